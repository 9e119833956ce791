"""Running a sweep: points -> constraints -> resume -> tasks -> a backend -> one table on disk.

``run_sweep(spec, out=..., workers=N | dask="tcp://host:8786" | dask="local")``:

1. generate the points (sim/sweep/points.py) and drop those that break a constraint (computed
   before anything runs: area, power, chips, cost... sim/sweep/hardware.py);
2. skip the point ids already in ``out`` (all of them, or all but the failed ones with
   ``retry_failed``);
3. cut the rest into tasks: for the static evaluator, chunks of points sorted by group (each
   task prices its groups on the vector path); for the serving evaluator, one point per task;
4. run the tasks in this process (``workers=1``), a local process pool (default: one worker
   per CPU), or on Dask (a ``dask.distributed`` Client to a scheduler address, or a
   ``LocalCluster``), appending each finished task's rows to the Parquet folder;
5. compact the folder and return the table in the spec's point order.

Whatever the backend, a task is the same pure function of the same points (seeds come from the
spec), so the table is the same. A point that raises is a row with ``status = error``; a task
whose worker dies is retried once, then split in halves until the point that kills its worker is
alone, and that point is recorded as failed ("worker died"); the other points are kept.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hwmodels.errors import InfeasibleError, SpecError
from sim.sweep.hardware import (
    check_constraints,
    derived,
    describe_range,
    hw_points,
    parallel_of,
    structural_key,
    structure,
)
from sim.sweep.points import generate
from sim.sweep.progress import Progress
from sim.sweep.results import ResultStore, _to_arrow
from sim.sweep.spec import DERIVED

__all__ = ["SweepRun", "evaluate", "make_tasks", "prefilter", "run_sweep"]

STATIC_CHUNK = 65536
MAX_ATTEMPTS = 2


@dataclass
class SweepRun:
    """What a run did, and its table (one row per point of the spec that passed the constraints)."""

    table: pd.DataFrame = field(repr=False)
    points: int = 0  # generated (after de-duplication)
    excluded: int = 0  # by constraints
    skipped: int = 0  # already in the results folder
    ran: int = 0
    ok: int = 0
    infeasible: int = 0
    errors: int = 0
    wall_s: float = 0.0
    backend: str = "inline"
    out: str | None = None
    notes: list = field(default_factory=list)

    @property
    def points_per_s(self) -> float:
        return self.ran / self.wall_s if self.wall_s > 0 else math.nan

    def summary(self) -> dict:
        return {k: getattr(self, k) for k in ("points", "excluded", "skipped", "ran", "ok", "infeasible", "errors",
                                              "wall_s", "backend", "out")} | {"points_per_s": self.points_per_s,
                                                                              "notes": list(self.notes)}


# ---------------------------------------------------------------------------------------------
# evaluation (what workers run)

def _custom(name: str):
    from sim.sweep.spec import custom_evaluator

    return custom_evaluator(name)


def evaluate(spec, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame``'s points, by the spec's evaluator (never raises for a point's sake)."""
    if spec.evaluator == "static":
        from sim.sweep.static import evaluate_static

        out = evaluate_static(spec, frame)
    elif spec.evaluator == "serving":
        from sim.sweep.serving import evaluate_serving

        out = evaluate_serving(spec, frame)
    else:
        out = _custom(spec.evaluator)(spec, frame)
    return _finish(spec, frame, out)


def _finish(spec, frame, out: pd.DataFrame) -> pd.DataFrame:
    out = out.copy()
    for c in ("status", "reason", "error"):
        if c not in out.columns:
            out[c] = "ok" if c == "status" else None
    for a in spec.axes:
        if a.name not in out.columns:
            out[a.name] = frame[a.name].to_numpy()
    first = ["point_id"] + [a.name for a in spec.axes]
    return out[first + [c for c in out.columns if c not in first]]


def _error_rows(spec, frame: pd.DataFrame, msg: str) -> pd.DataFrame:
    out = frame.copy()
    out["status"] = "error"
    out["reason"] = None
    out["error"] = msg
    return _finish(spec, frame, out)


# worker-process globals (set once per worker by the pool initializer)
_SPEC = None


def _init_worker(spec) -> None:
    global _SPEC
    _SPEC = spec
    if spec.evaluator == "static":
        import sim.sweep.static  # noqa: F401  (import once, before the first task)


def _task_in_worker(frame):
    return evaluate(_SPEC, frame)


def _task(spec, frame):
    return evaluate(spec, frame)


# ---------------------------------------------------------------------------------------------
# points before running

def prefilter(spec, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop the points that break a constraint; SpecError when no point is left (what came closest)."""
    if not spec.constraints or not len(frame):
        return frame, 0

    keys = [a.name for a in spec.axes if a.kind == "hw" and a.key is None] + \
        [a.name for a in spec.axes if a.name in ("tp", "pp", "ep", "replicas")]
    mask = np.ones(len(frame), dtype=bool)
    values: dict = {c.name: np.full(len(frame), np.nan) for c in spec.constraints}
    groups = [(None, frame)] if not keys else frame.groupby(keys, sort=False, dropna=False)
    pos = pd.Series(np.arange(len(frame)), index=frame.index)
    for _, sub in groups:
        idx = pos.loc[sub.index].to_numpy()
        row = sub.iloc[0]
        try:
            par = parallel_of(spec, row)
            system = structure(spec, structural_key(spec, row), par["chips_per_replica"])
            d = derived(spec, system, hw_points(spec, system, sub), par["chips"])
        except (InfeasibleError, SpecError):
            continue  # such points are recorded as infeasible when they run
        d = {k: v for k, v in d.items() if v is not None}
        mask[idx] = check_constraints(spec, d, sub)
        for c in spec.constraints:
            v = d[c.name] if c.name in d else sub[c.name].to_numpy()
            values[c.name][idx] = np.asarray(v, dtype=float)
    excluded = int((~mask).sum())
    if not mask.any():
        problems = []
        for c in spec.constraints:
            v = values[c.name]
            ok = np.ones(len(v), dtype=bool)
            if c.min is not None:
                ok &= v >= c.min
            if c.max is not None:
                ok &= v <= c.max
            if not ok.any():
                problems.append(spec.problem(("constraints", c.name), "no point meets this constraint: "
                                             + describe_range(spec, c, v)))
        if not problems:
            problems = [spec.problem(("constraints",), "the constraints together exclude every point "
                                     + "; ".join(describe_range(spec, c, values[c.name]) for c in spec.constraints))]
        problems.insert(0, spec.problem(("constraints",), f"the constraints exclude all {len(frame):,} points"))
        raise SpecError(problems)
    return frame[mask], excluded


def make_tasks(spec, frame: pd.DataFrame, chunk: int | None = None) -> list:
    """Chunks of points: the static evaluator's sorted by group (few groups per task)."""
    if not len(frame):
        return []
    if spec.evaluator == "static":
        from sim.sweep.static import group_columns

        keys = group_columns(spec)
        if keys:
            order = frame.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
            frame = frame.iloc[np.argsort(order, kind="stable")]
        size = chunk or STATIC_CHUNK
    else:
        size = chunk or 1
    return [frame.iloc[i:i + size] for i in range(0, len(frame), size)]


# ---------------------------------------------------------------------------------------------
# backends

def _run_inline(spec, tasks, sink):
    for fr in tasks:
        try:
            df = _task(spec, fr)
        except Exception as e:  # noqa: BLE001  (evaluate() records per-point failures; this is a broken task)
            df = _error_rows(spec, fr, f"{type(e).__name__}: {e}")
        sink(df)


def _noop():
    return os.getpid()


def _mp_context():
    """sim.procpool.mp_context with the sweep's modules preloaded where a fork server is used."""
    from sim.procpool import mp_context

    return mp_context(["numpy", "pandas", "sim.sweep.runner", "sim.sweep.static", "sim.vector"])


def _run_pool(spec, tasks, sink, workers: int):
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pending = deque((i, fr, 0) for i, fr in enumerate(tasks))
    inflight: dict = {}
    pool = None
    next_id = len(tasks)
    try:
        while pending or inflight:
            if pool is None:
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(), initializer=_init_worker,
                                           initargs=(spec,))
                try:  # a pool that cannot start its workers is not a point's fault: stop here
                    pool.submit(_noop).result(timeout=120)
                except Exception as e:  # noqa: BLE001  (whatever stops the workers from starting)
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise RuntimeError(f"the local process pool cannot start its workers ({type(e).__name__}: {e}); "
                                       "try --workers 1 or --dask local") from None
            # after a pool broke, every task that was in flight is a suspect: run suspects one at a
            # time, so a crash is blamed on the task that caused it and never on a bystander
            cap = 1 if any(att > 0 for _, _, att in pending) or any(a > 0 for _, _, a in inflight.values()) \
                else 2 * workers
            while pending and len(inflight) < cap:
                tid, fr, att = pending.popleft()
                try:
                    fut = pool.submit(_task_in_worker, fr)
                except BrokenProcessPool:
                    pending.appendleft((tid, fr, att))
                    break
                inflight[fut] = (tid, fr, att)
            if not inflight:
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
                continue
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            broken = []
            for fut in done:
                tid, fr, att = inflight.pop(fut)
                try:
                    sink(fut.result())
                except BrokenProcessPool:
                    broken.append((tid, fr, att))
                except Exception as e:  # noqa: BLE001  (a task that fails as a whole: its points are recorded)
                    sink(_error_rows(spec, fr, f"{type(e).__name__}: {e}"))
            if broken:
                # the pool is gone: every task in flight is lost with it; retry, then isolate by halving
                for fut, item in list(inflight.items()):
                    broken.append(item)
                inflight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
                for tid, fr, att in broken:
                    att += 1
                    if att < MAX_ATTEMPTS:
                        pending.appendleft((tid, fr, att))
                    elif len(fr) > 1:
                        h = len(fr) // 2
                        pending.appendleft((next_id, fr.iloc[h:], MAX_ATTEMPTS - 1))
                        pending.appendleft((next_id + 1, fr.iloc[:h], MAX_ATTEMPTS - 1))
                        next_id += 2
                    else:
                        sink(_error_rows(spec, fr, "worker died while evaluating this point (the process exited "
                                                   "or was killed; rerun with --retry-failed to try again)"))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(spec, tasks, sink, address: str, workers: int | None, processes: bool = True):
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as e:
        raise SpecError(f"--dask needs dask[distributed] installed ({e})") from None
    cluster = None
    if address == "local":
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=processes,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise SpecError(f"--dask {address}: cannot reach the scheduler ({e})") from None
    try:
        spec_f = client.scatter(spec, broadcast=True)
        meta: dict = {}
        futs = []
        for fr in tasks:
            f = client.submit(_task, spec_f, fr, pure=False)
            meta[f.key] = (fr, 0)
            futs.append(f)
        ac = as_completed(futs)
        for f in ac:
            fr, att = meta.pop(f.key)
            try:
                sink(f.result())
            except Exception as e:  # noqa: BLE001  (a lost worker or a failed task: recorded, the rest go on)
                killed = type(e).__name__ in ("KilledWorker", "CommClosedError", "CancelledError")
                if killed and len(fr) > 1:
                    h = len(fr) // 2
                    for part in (fr.iloc[:h], fr.iloc[h:]):
                        nf = client.submit(_task, spec_f, part, pure=False)
                        meta[nf.key] = (part, att + 1)
                        ac.add(nf)
                elif killed:
                    sink(_error_rows(spec, fr, f"worker died while evaluating this point ({type(e).__name__}); "
                                               "rerun with --retry-failed to try again"))
                else:
                    sink(_error_rows(spec, fr, f"{type(e).__name__}: {e}"))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------------------------------------
# the run

def run_sweep(spec, out=None, *, workers: int | None = None, dask: str | None = None, retry_failed: bool = False,
              progress: bool | None = None, limit: int | None = None, chunk: int | None = None,
              dask_processes: bool = True, flush_s: float = 2.0, stream=None) -> SweepRun:
    """Run ``spec`` (see the module docstring); ``out`` a results folder (None: in memory only).

    ``workers``: local processes (default: one per CPU for the serving and custom evaluators, 1 for
    the vectorized static evaluator; 1 runs in this process). ``dask``: a scheduler
    address or ``"local"`` (a LocalCluster of ``workers`` workers). ``limit``: run at most this
    many of the points left (for a quick look). ``progress``: None = automatic (see Progress).
    """
    t0 = time.perf_counter()
    frame = generate(spec)
    npoints = len(frame)
    frame, excluded = prefilter(spec, frame)
    order = frame["point_id"].tolist()
    store = None
    done: set = set()
    if out is not None:
        store = ResultStore(out, spec.fingerprint(), meta=_meta(spec))
        done = store.done_ids(retry_failed)
    todo = frame[pd.Index(np.fromiter(done, dtype=object, count=len(done))).get_indexer(
        frame["point_id"].to_numpy(dtype=object)) < 0] if done else frame
    skipped = len(frame) - len(todo)
    if limit is not None:
        todo = todo.iloc[:limit]
    tasks = make_tasks(spec, todo, chunk)
    if workers is None:
        # the static evaluator is vectorized: shipping its results between processes costs more
        # than a second core saves on small machines, so it runs in this process unless asked
        workers = 1 if spec.evaluator == "static" else (os.cpu_count() or 1)
    backend = "inline"
    if dask:
        backend = f"dask {dask}"
    elif workers > 1 and len(tasks) > 1:
        backend = f"local pool ({workers} workers)"
    bar = Progress(len(todo), label=f"sweep {spec.name}", enabled=progress, stream=stream)
    buf: list = []
    mem: list = []
    state = {"last": time.perf_counter(), "rows": 0}

    def flush():
        if buf:
            df = pd.concat(buf, ignore_index=True)
            buf.clear()
            state["rows"] = 0
            if store is not None:
                store.append(df)
            else:
                mem.append(df)
        state["last"] = time.perf_counter()

    def sink(df):
        buf.append(df)
        state["rows"] += len(df)
        bar.update(len(df))
        if store is None or time.perf_counter() - state["last"] >= flush_s or state["rows"] >= 250_000:
            flush()

    t_run = time.perf_counter()
    try:
        if not tasks:
            pass
        elif dask:
            _run_dask(spec, tasks, sink, dask, workers if workers != (os.cpu_count() or 1) or dask != "local" else None,
                      processes=dask_processes)
        elif backend.startswith("local pool"):
            _run_pool(spec, tasks, sink, workers)
        else:
            _run_inline(spec, tasks, sink)
    finally:
        flush()  # an interrupted run keeps everything that finished
        bar.close()
    run_s = time.perf_counter() - t_run
    order_ix = pd.Index(np.asarray(order, dtype=object))
    if store is not None:
        table = store.compact(order)
        pos = order_ix.get_indexer(table["point_id"].to_numpy(dtype=object)) if len(table) else np.zeros(0, int)
        if len(table) and (pos < 0).any():
            table = table[pos >= 0].reset_index(drop=True)
    else:
        table = pd.concat(mem, ignore_index=True) if mem else pd.DataFrame(columns=["point_id", "status"])
        table = _to_arrow(table).to_pandas()  # the same types as a table read back from Parquet
        pos = order_ix.get_indexer(table["point_id"].to_numpy(dtype=object))
        table = table.iloc[np.argsort(pos, kind="stable")].reset_index(drop=True)
    ran = len(todo)
    if ran:
        mask = pd.Index(todo["point_id"].to_numpy(dtype=object)).get_indexer(table["point_id"].to_numpy(dtype=object)) >= 0
        ran_rows = table[mask]
    else:
        ran_rows = table.iloc[:0]
    res = SweepRun(table=table, points=npoints, excluded=excluded, skipped=skipped, ran=ran,
                   ok=int((ran_rows["status"] == "ok").sum()), infeasible=int((ran_rows["status"] == "infeasible").sum()),
                   errors=int((ran_rows["status"] == "error").sum()), wall_s=run_s, backend=backend,
                   out=None if out is None else str(out))
    res.notes.append(f"total {time.perf_counter() - t0:.2f} s (generation, constraints, resume and compaction included)")
    return res


def _meta(spec) -> dict:
    return {"name": spec.name, "spec": spec.path, "hardware": spec.hardware, "evaluator": spec.evaluator,
            "axes": {a.name: (a.key or a.path or a.name) for a in spec.axes},
            "units": "SI: seconds, bytes, B/s, FLOP/s, W, J, USD; hardware axes in SI (e.g. bandwidth in B/s)",
            "derived": DERIVED, "cost_assumptions": spec.cost.describe() + list(spec.cost.sources),
            "area": spec.area, "power": spec.power}

