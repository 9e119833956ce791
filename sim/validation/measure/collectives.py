"""Multi-GPU collectives over NCCL (torch.distributed), one spawned process per rank."""

from __future__ import annotations

import datetime
import os
import time

from sim.validation.measure.csvformat import COLLECTIVE_OPS, CsvSink, _log, shape_id
from sim.validation.measure.suites import _settings_for
from sim.validation.measure.timing import summarize_samples

_COLLECTIVE_SIZES = [1 << p for p in range(10, 31, 2)]  # 1 KiB .. 1 GiB per rank


def _collective_fn(torch, dist, op, x, n, world, rank, dt):  # pragma: no cover - multi-GPU
    """One call of collective ``op`` on buffer ``x`` (nccl-tests sizes: x is the full buffer)."""
    if op == "allreduce":
        return lambda: dist.all_reduce(x)
    if op == "allgather":
        part = x[: n // world].clone()
        return lambda: dist.all_gather_into_tensor(x, part)
    if op == "reducescatter":
        part = torch.empty(n // world, device=x.device, dtype=dt)
        return lambda: dist.reduce_scatter_tensor(part, x)
    if op == "alltoall":
        y = torch.empty_like(x)
        return lambda: dist.all_to_all_single(y, x)

    def sendrecv():
        if rank == 0:
            dist.send(x, 1)
        else:
            dist.recv(x, 0)

    return sendrecv


def _collective_worker(rank, world, port, sizes, ops, out_path, settings, backend="nccl"):  # pragma: no cover
    """One rank of the collectives benchmark (spawned). ``backend='gloo'`` runs it on CPU tensors
    (used only to check the control flow where there is no GPU)."""
    import json
    import warnings

    import torch
    import torch.distributed as dist

    warnings.filterwarnings("ignore", category=FutureWarning)  # renamed c10d functions in newer torch
    on_gpu = backend == "nccl"
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    if on_gpu:
        torch.cuda.set_device(rank)
    device = "cuda" if on_gpu else "cpu"
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=300))

    def sync():
        if on_gpu:
            torch.cuda.synchronize()

    def timed(fn):
        if on_gpu:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    results = []
    dt = torch.bfloat16 if on_gpu else torch.float32
    el = torch.tensor([], dtype=dt).element_size()
    for op in ops:
        if op == "sendrecv" and world != 2:
            continue
        for nbytes in sizes:
            n = max(world, nbytes // el) // world * world
            err = None
            samples: list[float] = []
            try:
                x = torch.empty(n, device=device, dtype=dt).normal_()
                fn = _collective_fn(torch, dist, op, x, n, world, rank, dt)
                for _ in range(3):
                    fn()
                sync()
            except Exception as e:  # noqa: BLE001 - reported by rank 0; all ranks go on to the barrier
                err = f"{type(e).__name__}: {e}"
            # agree on whether every rank is ready, so that no rank waits forever in a collective
            ok = torch.tensor([0 if err else 1], device=device)
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
            if ok.item():
                total = 0.0
                while len(samples) < settings["max_reps"]:
                    dist.barrier()
                    sync()
                    t = timed(fn)
                    samples.append(t)
                    total += t
                    flag = torch.tensor([1 if (len(samples) >= settings["min_reps"] and total >= settings["target_s"])
                                         else 0], device=device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MIN)  # all ranks stop together
                    if flag.item():
                        break
            if rank == 0:
                if samples:
                    tm = summarize_samples(samples)
                    results.append({"op": op, "bytes": n * el, "num_devices": world, "median": tm.median_s,
                                    "spread": tm.spread, "reps": tm.reps, "dtype": str(dt).replace("torch.", "")})
                else:
                    results.append({"op": op, "bytes": n * el, "num_devices": world,
                                    "error": err or "failed on another rank"})
    if rank == 0:
        with open(out_path, "w") as f:
            json.dump(results, f)
    dist.destroy_process_group()


def spawn_collectives(world: int, sizes: list[int], settings: dict, ops=COLLECTIVE_OPS,
                      backend: str = "nccl") -> list[dict]:
    """Run the collectives benchmark on ``world`` processes; rank 0's results (dicts)."""
    import json
    import socket
    import tempfile

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as td:
        out = os.path.join(td, "coll.json")
        mp.spawn(_collective_worker, args=(world, port, list(sizes), list(ops), out, settings, backend),
                 nprocs=world, join=True)
        with open(out) as f:
            return json.load(f)


def run_collectives(ctx: dict, sink: CsvSink, *, hardware: str, suite: str, log=_log) -> int:
    """All-reduce, all-gather, reduce-scatter, all-to-all (and send/recv for 2 GPUs) over NCCL,
    for 2, 4, 8 .. visible GPUs. Returns the number of rows written; 0 with one GPU."""
    n = ctx["device_count"]
    if n < 2:
        log("collectives: one CUDA device visible, skipped")
        return 0
    s = _settings_for("cuda", suite)
    settings = {"target_s": s.target_s, "min_reps": s.min_reps, "max_reps": s.max_reps}
    sizes = _COLLECTIVE_SIZES if suite == "full" else _COLLECTIVE_SIZES[::2]
    rows = 0
    world = 2
    while world <= n:
        t0 = time.perf_counter()
        try:
            results = spawn_collectives(world, sizes, settings)
        except Exception as e:  # noqa: BLE001
            log(f"collectives on {world} GPUs failed: {type(e).__name__}: {e}")
            results = []
        failed = [r for r in results if "error" in r]
        for r in results:
            if "error" in r:
                continue
            row = {"hardware": hardware, "op": r["op"], "dtype": "bf16", "bytes": r["bytes"],
                   "num_devices": r["num_devices"], "measured_time_s": r["median"], "spread": r["spread"],
                   "reps": r["reps"], "calls_per_rep": 1, "gbyte_per_s": r["bytes"] / r["median"] / 1e9,
                   "source": f"llmsim-measure:cuda:{suite}", "name": f"nccl:{r['op']}"}
            row["shape_id"] = shape_id(row)
            sink.write(row)
            rows += 1
        log(f"collectives on {world} GPUs: {len(results) - len(failed)} rows"
            + (f", {len(failed)} failed (first: {failed[0]['error'][:160]})" if failed else "")
            + f" in {time.perf_counter() - t0:.1f} s")
        world *= 2
    return rows
