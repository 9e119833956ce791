"""The planner's candidates searched and verified in parallel processes (``PlanRequest.workers``, ``plan --workers``).

sim/plan.py decides each candidate's fate in one order (cheapest lower bound first, pruned by the cheaper
configurations found before it); :class:`Jobs` only changes where a search or a verification runs:

- in this process, live (one job; a ``simulate`` other than sim.serving.simulate, such as a test's
  stand-in, which may not pickle or may record its calls here; or a single task wanted);
- or in a process pool, started ahead of its turn: :meth:`Jobs.ahead` submits the next candidates
  that the configurations found so far cannot rule out (at most ``workers`` started and not yet taken), and
  :meth:`Jobs.search` / :meth:`Jobs.verify_best` wait for the one whose turn it is and copy its state back.
  Verifications start whenever a worker is free (each of the ``top`` unverified is verified in any case).
  A search whose candidate is then pruned is cancelled or its result dropped, and its probes are not
  counted: the plan is the sequential one, only sooner. Progress lines of a worker are collected and
  told when its result is taken, so stderr reads as in a sequential run.

A search or verification is a pure function of the request and its candidate (the simulations are seeded
and every cache only remembers), so where it runs cannot change its result. An error a candidate can have
(InfeasibleError, SpecError) is settled inside the task as sim.plan does in-process; any other exception
raised by a task surfaces when its result is taken, and leaving the ``with`` block by an exception (Ctrl-C
included) cancels what is queued and terminates the workers.

Start method: sim.procpool.mp_context (fork on Linux while this process has no other thread: workers
start in milliseconds with the parent's imports and its warm caches; forkserver or spawn otherwise).
Each worker keeps its own caches.
"""

from __future__ import annotations

__all__ = ["Jobs", "default_jobs"]

_PRELOAD = ("numpy", "pandas", "simpy", "sim.plan", "sim.serving")


def default_jobs() -> int:
    """The default number of processes: the CPUs this process may use."""
    from sim.procpool import usable_cpus

    return usable_cpus()


def _remote(task, verify: bool, req, c, wl, budget: int, lout: float, tell: bool):
    """``task`` (sim.plan.run_task) in a worker: (the candidate after it, probes counted, progress lines)."""
    from sim.serving import simulate

    lines: list = []
    n = task(verify, req, c, wl, simulate, budget, lout, lines.append if tell else None)
    return c, n, lines


class Jobs:
    """Runs the searches and verifications of a plan in this process or in a pool (see the module docstring)."""

    def __init__(self, req, wl, simulate, budget: int, lout: float, progress, work: int, task):
        """``task``: sim.plan.run_task (one candidate's search or verification); ``work``: the candidates to search."""
        from sim.serving import simulate as serving_simulate

        self.req, self.wl, self.simulate, self.budget, self.lout, self.progress = req, wl, simulate, budget, lout, progress
        self.task = task
        jobs = req.workers if req.workers is not None else default_jobs()
        self.workers = min(jobs, work)  # a plan verifies only candidates it searched
        self.parallel = self.workers > 1 and simulate is serving_simulate
        self.pool = None
        self.futures: dict = {}  # (id(candidate), verify) -> the future of its task, until its result is taken
        self.seen: set = set()  # the keys of tasks started, or no longer wanted
        self.queue: list = []  # (candidate, verify): the tasks wanted next, in their turn's order
        self.eager = False  # start a queued task whenever a worker is free (verifications: each one is needed)
        self.dropped: list = []  # futures of tasks no longer wanted that may still be running

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if self.pool is not None:
            if kind is not None or self._busy():
                from sim.procpool import abort

                abort(self.pool)
            else:
                self.pool.shutdown(wait=True)
            self.pool = None
        return False

    def ahead(self, cands: list, verify: bool = False) -> None:
        """The tasks wanted next, in this order (the one whose turn it is first): they start in the pool as
        workers come free, at most ``workers`` running or queued there; nothing when the tasks run here."""
        self.queue = [(c, verify) for c in cands if (id(c), verify) not in self.seen]
        self.eager = verify
        if not self.parallel or (self.pool is None and len(self.queue) < 2):
            return
        if self.pool is None:
            from concurrent.futures import ProcessPoolExecutor

            from sim.procpool import ignore_sigint, mp_context

            self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp_context(_PRELOAD),
                                            initializer=ignore_sigint)
        self._fill()

    def discard(self, c) -> None:
        """``c`` will not be searched: cancel its task, or drop its result when it already runs."""
        self.seen.add((id(c), False))
        f = self.futures.pop((id(c), False), None)
        if f is not None and not f.cancel():
            self.dropped.append(f)

    def settle(self) -> None:
        """Between the searches and the verifications: a pool still busy with dropped searches is ended, so
        the verifications do not queue behind them (a new pool starts when they are wanted)."""
        if self.pool is not None and self._busy():
            from sim.procpool import abort

            abort(self.pool)
            self.pool = None
        self.dropped, self.queue = [], []

    def search(self, c) -> int:
        """Candidate ``c``'s search: the probes it counted."""
        return self._run(c, False)

    def verify_best(self, cands: list) -> None:
        """Verify the cheapest configurations until the ``top`` cheapest ok ones are all verified (a
        verification may grow a fleet and so reorder them). A verification only makes its candidate
        costlier or not ok, so every candidate among the ``top`` unverified now is verified before the loop
        ends: they all start at once."""
        while True:
            ok = sorted([c for c in cands if c.status == "ok"], key=lambda c: (c.usd_per_hour, -c.headroom))
            todo = [c for c in ok[: self.req.top] if c.verified is None]
            if not todo:
                return
            self.ahead(todo, verify=True)
            self._run(todo[0], True)

    def _run(self, c, verify: bool) -> int:
        key = (id(c), verify)
        if key not in self.futures:
            self.seen.add(key)
            return self.task(verify, self.req, c, self.wl, self.simulate, self.budget, self.lout, self.progress)
        return self._take(key, c)

    def _busy(self) -> list:
        return [f for f in (*self.futures.values(), *self.dropped) if not f.done()]

    def _fill(self) -> None:
        """Start the next wanted tasks while fewer than ``workers`` are running or queued in the pool; searches
        also while fewer than ``workers`` results wait to be taken (a search far ahead of its turn is more
        likely to be skipped by then: measured, starting them whenever a worker was free wasted 15-25 % more
        CPU on the example of docs/planning.md)."""
        held = len(self._busy()) if self.eager else len(self.futures) + sum(not f.done() for f in self.dropped)
        free = self.workers - held
        for c, verify in self.queue:
            if free <= 0:
                break
            if (id(c), verify) not in self.seen:
                self.seen.add((id(c), verify))
                self.futures[id(c), verify] = self.pool.submit(_remote, self.task, verify, self.req, c, self.wl,
                                                               self.budget, self.lout, self.progress is not None)
                free -= 1

    def _take(self, key: tuple, c) -> int:
        """Wait for ``c``'s task, starting the next wanted ones as others finish; copy its state back."""
        from concurrent.futures import FIRST_COMPLETED, wait

        f = self.futures[key]
        while not f.done():
            wait(self._busy(), return_when=FIRST_COMPLETED)
            self._fill()
        del self.futures[key]
        done, n, lines = f.result()
        c.__dict__.update(done.__dict__)
        for line in lines:
            self.progress(line)
        return n
