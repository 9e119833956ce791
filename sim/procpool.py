"""Local process pools shared by the sweep runner (sim/sweep/runner.py) and the planner (sim/plan_jobs.py):
how many CPUs this process may use, which start method, and how a pool is torn down when its caller stops.
"""

from __future__ import annotations

import os
import sys

__all__ = ["abort", "ignore_sigint", "mp_context", "usable_cpus"]


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def mp_context(preload=()):
    """fork where it is safe (Linux, no other thread yet: fast, workers start with the parent's imports and
    caches, and scripts without a __main__ guard work), else forkserver (Linux; ``preload`` imported once
    in its server) or spawn (macOS, Windows: fork is unsafe with the system frameworks there)."""
    import multiprocessing as mp
    import threading

    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return mp.get_context("fork")
    if sys.platform.startswith("linux"):
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))
        return ctx
    return mp.get_context("spawn")


def ignore_sigint() -> None:
    """A worker's initializer: Ctrl-C reaches the whole process group; the parent alone handles it (and
    ends its workers with :func:`abort`), so a worker neither dies mid-queue with a traceback nor carries on."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def abort(pool) -> None:
    """Stop a ProcessPoolExecutor now: queued tasks cancelled, running workers terminated and reaped (no
    orphans, no waiting for a task whose result is no longer wanted)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # private, but the only handles before 3.14
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=10)
    if manager is not None:  # it sees its workers gone and ends; joined, this process is single-threaded again
        manager.join(timeout=10)
