"""Running a suite: time each case, write one row each, and the CUDA context."""

from __future__ import annotations

import time
from collections.abc import Callable

from sim.validation import environment as E
from sim.validation.measure.collectives import run_collectives
from sim.validation.measure.csvformat import CsvSink, _log, shape_id
from sim.validation.measure.suites import (
    DEFAULT_CPU_HARDWARE,
    Case,
    _flops_bytes,
    _settings_for,
    build_cases,
    catalog_name_for_gpu,
)
from sim.validation.measure.timing import MeasureError, _cuda_time, _host_time, _set_tf32
from sim.validation.measure.torch_kernels import _import_torch


def run_measurements(cases: list[Case], sink: CsvSink, *, device: str, hardware: str, suite: str,
                     time_budget_s: float | None = None, log: Callable[[str], None] = _log) -> dict:
    """Measure every case in order, writing one row each. Failures are logged and skipped."""
    s = _settings_for(device, suite)
    torch = None
    if device == "cuda":
        torch = _import_torch()
        _set_tf32(torch, False)
    t_start = time.perf_counter()
    done = failed = skipped = 0
    errors: dict[str, int] = {}
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.group, []).append(c)
    source = f"llmsim-measure:{device}:{suite}"
    for gi, (group, gcases) in enumerate(groups.items()):
        if time_budget_s is not None and time.perf_counter() - t_start > time_budget_s:
            skipped += len(gcases)
            log(f"time budget of {time_budget_s:.0f} s spent: skipping group {group!r} ({len(gcases)} cases)")
            continue
        t_group = time.perf_counter()
        g_ok = g_fail = 0
        for case in gcases:
            if time_budget_s is not None and time.perf_counter() - t_start > time_budget_s:
                skipped += 1
                continue
            kern = built = None
            try:
                built = case.build()
                extra = {}
                if isinstance(built, tuple):  # (kernel, kernel label) from attention
                    built, label = built
                    kname, _, variant = label.partition(":")
                    extra = {"kernel": kname, "variant": variant}
                kern = built
                timing = _cuda_time(torch, kern, s) if device == "cuda" else _host_time(kern, s)
            except MeasureError:
                raise
            except Exception as e:  # noqa: BLE001 - one failing shape must not stop the run
                failed += 1
                g_fail += 1
                key = f"{case.group}: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
                errors[key] = errors.get(key, 0) + 1
                if errors[key] == 1:
                    log(f"  failed {case.row.get('name')} {shape_id(case.row)}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200] if str(e) else ''}")
                if device == "cuda" and torch is not None:
                    try:
                        torch.cuda.synchronize()
                        torch.cuda.empty_cache()
                    except Exception:  # noqa: BLE001
                        pass
                continue
            finally:
                kern = built = None  # free this case's buffers before the next one is built
            row = dict(case.row)
            row.update(extra)
            row["hardware"] = hardware
            row["measured_time_s"] = timing.median_s
            row["spread"] = timing.spread
            row["reps"] = timing.reps
            row["calls_per_rep"] = timing.calls_per_rep
            fl, by = _flops_bytes(row)
            row["gflop_per_s"] = fl / timing.median_s / 1e9 if fl else None
            row["gbyte_per_s"] = by / timing.median_s / 1e9 if by else None
            row["source"] = source
            row["shape_id"] = shape_id(row)
            sink.write(row)
            done += 1
            g_ok += 1
            if device == "cuda" and torch is not None:
                torch.cuda.empty_cache()
        log(f"[{gi + 1}/{len(groups)}] {group}: {g_ok} rows" + (f", {g_fail} failed" if g_fail else "")
            + f" in {time.perf_counter() - t_group:.1f} s (total {time.perf_counter() - t_start:.1f} s)")
    return {"rows": done, "failed": failed, "skipped": skipped, "errors": errors,
            "seconds": time.perf_counter() - t_start}


# -- CUDA availability and collectives --------------------------------------------------------


def cuda_context() -> dict:
    """torch + a visible CUDA device, or MeasureError with a plain message."""
    torch = _import_torch()
    if not torch.cuda.is_available():
        raise MeasureError(f"torch {torch.__version__} sees no CUDA device "
                           f"(torch.version.cuda={torch.version.cuda}); run with --device cpu, "
                           "or on a machine with an NVIDIA GPU and a CUDA build of torch")
    n = torch.cuda.device_count()
    name = torch.cuda.get_device_name(0)
    major, minor = torch.cuda.get_device_capability(0)
    dtypes = ["bf16", "fp16", "tf32", "fp32"]
    if major < 8:
        dtypes = ["fp16", "fp32"]
    if (major, minor) >= (8, 9) and hasattr(torch, "_scaled_mm") and hasattr(torch, "float8_e4m3fn"):
        dtypes.append("fp8_e4m3")
    return {"torch": torch, "device_count": n, "device_name": name, "capability": (major, minor),
            "gemm_dtypes": dtypes}


def plan_cases(device: str, suite: str, *, hardware: str | None = None,
               use_torch: bool | None = None) -> tuple[list[Case], str, dict | None]:
    """The cases of ``suite`` on ``device``, the hardware name of their rows, and the CUDA context
    (None on cpu). Raises MeasureError when ``device='cuda'`` cannot run here."""
    if device == "cpu":
        return build_cases("cpu", suite, use_torch=use_torch), hardware or DEFAULT_CPU_HARDWARE, None
    ctx = cuda_context()
    return (build_cases("cuda", suite, torch_caps=ctx), hardware or catalog_name_for_gpu(ctx["device_name"]), ctx)


def _timing_note(device: str) -> str:
    if device == "cuda":
        return ("CUDA events around a CUDA-graph replay of N back-to-back calls (N sized so a sample lasts "
                ">= 1 ms; eager launches if capture fails); 2 warm-up samples; samples until >= 10 and "
                ">= 0.1 s; buffer copies rotated so >= 256 MiB is touched between reuses")
    return ("time.perf_counter around each call (host-synchronous numpy/torch); 1 warm-up call; samples "
            "until >= 5 and >= 0.2 s (max 200); buffer copies rotated to exceed 2x the L3 cache (max 1 GiB)")


def measure_to_csv(cases: list[Case], out: str, *, device: str, suite: str, hardware: str,
                   ctx: dict | None = None, time_budget_s: float | None = None, collectives: bool = True,
                   argv: list[str] | None = None, log: Callable[[str], None] = _log) -> dict:
    """Measure ``cases`` into the CSV ``out`` and write the environment file beside it.

    The environment file is written first (so an interrupted run has one) and again at the end
    with the run's summary. With a CUDA context of 2+ GPUs and ``collectives``, the NCCL
    collectives are measured too. Returns the summary (rows, failed, skipped, seconds, ...)."""
    env_extra: dict = {"timing": _timing_note(device)}
    if ctx is not None:
        env_extra["cuda_device_name"] = ctx["device_name"]
        env_extra["cuda_device_count"] = ctx["device_count"]
        env_extra["cuda_capability"] = "{}.{}".format(*ctx["capability"])
    env = E.collect_environment(device, suite, hardware, argv=argv, extra=env_extra)
    env_path = E.env_path_for(out)
    sink = CsvSink(out)
    E.write_environment(env_path, env)
    log(f"{len(cases)} cases on {device} ({hardware}), suite {suite} -> {out}")
    load = env.get("loadavg_start")
    ncpu = (env.get("cpu") or {}).get("affinity_cpus") or (env.get("cpu") or {}).get("logical_cpus") or 1
    if device == "cpu" and load and load[0] > 0.5 * ncpu:
        log(f"warning: load average {load[0]} on {ncpu} CPUs: other work will slow these measurements")
    summary: dict = {}
    busy0 = E.cpu_busy_seconds()
    try:
        summary = run_measurements(cases, sink, device=device, hardware=hardware, suite=suite,
                                   time_budget_s=time_budget_s, log=log)
        if ctx is not None and collectives:
            summary["collective_rows"] = run_collectives(ctx, sink, hardware=hardware, suite=suite, log=log)
    finally:
        sink.close()
        env["summary"] = {"rows": sink.rows, **{k: v for k, v in summary.items() if k != "rows"},
                          "loadavg_end": E.loadavg(), "other_processes_cpu_s": E.other_cpu_seconds(busy0)}
        E.write_environment(env_path, env)
    other = env["summary"].get("other_processes_cpu_s")
    if device == "cpu" and other and summary.get("seconds") and other > 0.1 * summary["seconds"]:
        log(f"warning: other processes used {other:.1f} CPU-s during the {summary['seconds']:.0f} s run: "
            "the CPU times are likely disturbed; rerun on a quiet machine")
    log(f"wrote {sink.rows} rows to {out} and {env_path}"
        + (f"; {summary.get('failed')} failed" if summary.get("failed") else ""))
    return {**summary, "rows": sink.rows, "env_path": env_path}
