"""Online serving metrics: per-request records, the inter-token-time distribution, the timeline.

Memory stays bounded for runs of millions of requests:

- :class:`RequestLog` buffers finished requests in chunks. With a path it appends each chunk to a
  CSV file and keeps only float32 copies of the latency columns (TTFT, TPOT, e2e, queueing,
  max ITL: 20 bytes per request) for exact percentiles (exact up to float32 rounding, a
  relative 6e-8); without a path it also keeps the whole table in memory (float64).
- :class:`LogHistogram` counts every inter-token time in log-spaced bins (1000 per decade), so
  ITL percentiles carry at most 0.12 % relative error (half a bin) without storing token times;
  the maximum is exact.
- :class:`Timeline` samples steps: it keeps every step until ``max_points`` rows, then every
  second step, every fourth, ... (it halves itself), so it shows the whole run at even spacing
  in steps. Means over steps (KV utilization, batch size) are kept exactly alongside.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np

__all__ = ["REQUEST_COLUMNS", "TIMELINE_COLUMNS", "LogHistogram", "RequestLog", "Timeline"]

REQUEST_COLUMNS = (
    "request_id",
    "arrival_s",
    "queue_s",
    "ttft_s",
    "tpot_s",
    "max_itl_s",
    "e2e_s",
    "finish_s",
    "input_tokens",
    "output_tokens",
    "preemptions",
    "prefix_hit_tokens",
    "replica",
)
_FLOAT = {"arrival_s", "queue_s", "ttft_s", "tpot_s", "max_itl_s", "e2e_s", "finish_s"}
_KEPT = ("ttft_s", "tpot_s", "e2e_s", "queue_s", "max_itl_s")  # float32 copies for percentiles
TIMELINE_COLUMNS = (
    "time_s",
    "replica",
    "batch_size",
    "tokens",
    "prefill_tokens",
    "kv_utilization",
    "step_s",
    "queued",
    "kind",
)


class RequestLog:
    """Finished requests; optionally streamed to ``path`` (CSV) in chunks of ``chunk`` rows."""

    def __init__(
        self,
        path: str | Path | None = None,
        chunk: int = 1 << 16,
        slo_ttft_s: float | None = None,
        slo_tpot_s: float | None = None,
        keep: bool = True,
    ):
        self.path = Path(path) if path is not None else None
        self.keep = keep  # without a path: keep the rows in memory (False: only the float32 latency columns)
        self.chunk = chunk
        self.slo_ttft_s = slo_ttft_s
        self.slo_tpot_s = slo_tpot_s
        self._rows: list = []
        self._kept: dict = {c: [] for c in _KEPT}
        self._tables: list = []  # in-memory column chunks (no path)
        self._header = True
        self.completed = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.slo_met = 0
        self.preemptions = 0
        self.first_arrival_s = math.inf
        self.last_finish_s = 0.0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(",".join(REQUEST_COLUMNS) + "\n")
            self._header = False

    def add(self, s, t: float) -> None:
        """Record sequence ``s`` finishing at time ``t`` (seconds)."""
        a = s.arrival_s
        ttft = s.first_token_s - a
        out = s.output_tokens
        if out > 1:
            tpot = (t - s.first_token_s) / (out - 1)
            itl = s.itl_max
        else:
            tpot = itl = math.nan
        self._rows.append(
            (
                s.req_id,
                a,
                s.first_sched_s - a,
                ttft,
                tpot,
                itl,
                t - a,
                t,
                s.input_tokens,
                out,
                s.preemptions,
                s.prefix_hit_tokens,
                s.replica,
            )
        )
        self.completed += 1
        self.input_tokens += s.input_tokens
        self.output_tokens += out
        self.preemptions += s.preemptions
        if (self.slo_ttft_s is None or ttft <= self.slo_ttft_s) and (
            self.slo_tpot_s is None or out <= 1 or tpot <= self.slo_tpot_s
        ):
            self.slo_met += 1
        if t > self.last_finish_s:
            self.last_finish_s = t
        if len(self._rows) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        cols = list(zip(*self._rows))
        self._rows = []
        table = {}
        for name, values in zip(REQUEST_COLUMNS, cols):
            table[name] = np.array(values, dtype=np.float64 if name in _FLOAT else np.int64)
        for c in _KEPT:
            self._kept[c].append(table[c].astype(np.float32))
        if self.path is not None:
            import pandas as pd

            pd.DataFrame(table).to_csv(self.path, mode="a", header=False, index=False)
        elif self.keep:
            self._tables.append(table)

    def metric(self, name: str) -> np.ndarray:
        """All values of a kept latency column (float32), in finishing order."""
        self.flush()
        parts = self._kept[name]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def frame(self):
        """The per-request table as a DataFrame, sorted by request id (read back from the CSV when
        streamed)."""
        import pandas as pd

        self.flush()
        if self.path is None and not self.keep:
            raise ValueError("the per-request rows were not kept (keep_requests=False and no out_dir)")
        if self.path is not None:
            df = pd.read_csv(self.path)
        elif self._tables:
            df = pd.DataFrame({c: np.concatenate([t[c] for t in self._tables]) for c in REQUEST_COLUMNS})
        else:
            df = pd.DataFrame(
                {c: np.zeros(0, dtype=np.float64 if c in _FLOAT else np.int64) for c in REQUEST_COLUMNS}
            )
        return df.sort_values("request_id", kind="stable").reset_index(drop=True)


class LogHistogram:
    """Counts of positive values in log10-spaced bins (``per_decade`` per decade, lo..hi)."""

    def __init__(self, lo: float = 1e-7, hi: float = 1e5, per_decade: int = 1000):
        self.lo_exp = math.log10(lo)
        self.per_decade = per_decade
        self.nbins = int(round((math.log10(hi) - self.lo_exp) * per_decade))
        # [0]: <= lo (incl. zero), [-1]: > hi; a Python list (a token's count is one item add, ~5x cheaper than
        # on a numpy array), read as an array through ``counts``
        self._counts = [0] * (self.nbins + 2)
        self.n = 0
        self.total = 0.0
        self.max = 0.0
        self._last = None
        self._last_idx = 0

    def _bin(self, x: float) -> int:
        """The bin of ``x``: 0 at or below ``lo`` (zero included), nbins + 1 above ``hi``."""
        if x <= 0:
            return 0
        idx = int((math.log10(x) - self.lo_exp) * self.per_decade) + 1
        return 0 if idx < 1 else (self.nbins + 1 if idx > self.nbins else idx)

    def add(self, x: float, k: int = 1) -> None:
        if x == self._last:
            idx = self._last_idx
        else:
            idx = self._bin(x)
            self._last, self._last_idx = x, idx
            if x > self.max:
                self.max = x
        self._counts[idx] += k
        self.n += k
        self.total += x * k

    def add_many(self, xs, ks) -> None:
        """``add(x, k)`` for each pair in order whose ``k`` is not 0 (the same counts, maximum and sum),
        in one call."""
        last, last_idx = self._last, self._last_idx
        counts, n, total, mx = self._counts, self.n, self.total, self.max
        bin_of = self._bin
        for x, k in zip(xs, ks):
            if not k:
                continue
            if x == last:
                idx = last_idx
            else:
                idx = bin_of(x)
                last, last_idx = x, idx
                if x > mx:
                    mx = x
            counts[idx] += k
            n += k
            total += x * k
        self._last, self._last_idx = last, last_idx
        self.n, self.total, self.max = n, total, mx

    @property
    def counts(self) -> np.ndarray:
        """Counts per bin (int64): [0] at or below ``lo`` (zero included), [-1] above ``hi``."""
        return np.array(self._counts, dtype=np.int64)

    def quantile(self, q: float) -> float:
        """Approximate q-quantile (0..1): the geometric middle of the bin holding it."""
        if self.n == 0:
            return math.nan
        rank = q * (self.n - 1)
        cum = np.cumsum(self.counts)
        idx = int(np.searchsorted(cum, rank, side="right"))
        if idx == 0:
            return 0.0
        if idx > self.nbins:
            return self.max
        v = 10 ** (self.lo_exp + (idx - 0.5) / self.per_decade)
        return min(v, self.max)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan


class Timeline:
    """Step samples of one replica, decimated by halving when ``max_points`` is reached."""

    def __init__(self, replica: int, max_points: int = 20_000):
        self.replica = replica
        self.max_points = max(2, max_points)
        self.rows: list = []
        self.stride = 1
        self._k = 0
        # exact step-weighted and time-weighted sums
        self.steps = 0
        self.busy_s = 0.0
        self.kv_time = 0.0  # integral of KV utilization over busy time
        self.batch_time = 0.0
        self.kv_max = 0.0
        self.batch_max = 0

    def add(
        self,
        t: float,
        batch: int,
        tokens: int,
        prefill_tokens: int,
        kv: float,
        step_s: float,
        queued: int,
        kind: str = "",
    ) -> None:
        self._add_rows((t,), (batch,), (tokens,), (prefill_tokens,), (kv,), (step_s,), queued, kind)

    def add_steps(self, ts, batches, kvs, steps_s, queued: int, kind: str) -> None:
        """``add(t, b, b, 0, kv, step_s, queued, kind)`` for each step in order (decode steps: as many
        tokens as requests, no prefill), in one call: the same sums, maxima and kept rows."""
        self._add_rows(ts, batches, batches, itertools.repeat(0), kvs, steps_s, queued, kind)

    def _add_rows(self, ts, batches, tokens, prefills, kvs, steps_s, queued: int, kind: str) -> None:
        """Steps in order (the one place a step enters the timeline): sums, maxima and every
        ``stride``-th row kept, halved (and the stride doubled) when ``max_points`` are kept."""
        busy, kv_time, batch_time = self.busy_s, self.kv_time, self.batch_time
        kv_max, batch_max = self.kv_max, self.batch_max
        k, stride, rows, rep = self._k, self.stride, self.rows, self.replica
        for t, b, tok, pf, kv, d in zip(ts, batches, tokens, prefills, kvs, steps_s):
            busy += d
            kv_time += kv * d
            batch_time += b * d
            if kv > kv_max:
                kv_max = kv
            if b > batch_max:
                batch_max = b
            if not k % stride:
                rows.append((t, rep, b, tok, pf, kv, d, queued, kind))
                if len(rows) >= self.max_points:
                    rows = rows[::2]
                    stride *= 2
            k += 1
        self.steps += len(steps_s)
        self.busy_s, self.kv_time, self.batch_time = busy, kv_time, batch_time
        self.kv_max, self.batch_max = kv_max, batch_max
        self._k, self.stride, self.rows = k, stride, rows
