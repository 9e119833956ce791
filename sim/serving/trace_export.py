"""Chrome/Perfetto trace of one replica's simulated timeline (open in ui.perfetto.dev or chrome://tracing).

The JSON follows the Trace Event Format: times in microseconds of simulated time.

- one complete event (``ph: X``) per step on thread "step" (with ``pp > 1``, one per pipeline
  stage on threads "stage 0" .. "stage pp-1", which shows the bubbles), named by its kind
  (prefill, decode, mixed) with the batch size, tokens and KV utilization as arguments;
- counters (``ph: C``) for KV-cache utilization, batch size and queue length at every step;
- per request, async spans (``ph: b``/``e``) for "queued" (arrival to first scheduled) and
  "serving" (first scheduled to last token, or to the hand-off in a prefill pool).

The recorder stops adding events after ``max_events`` (the trace says so in its metadata), so a
long run yields a trace of its beginning rather than an unbounded file.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["TraceRecorder"]


class TraceRecorder:
    def __init__(self, replica: int = 0, max_events: int = 200_000, pp: int = 1):
        self.replica = replica
        self.max_events = max_events
        self.pp = pp
        self.events: list = []
        self.dropped = 0
        self._started: dict = {}

    def _add(self, ev: dict) -> bool:
        if len(self.events) >= self.max_events:
            self.dropped += 1
            return False
        self.events.append(ev)
        return True

    def step(self, plan, t0: float, dt: float, kv: float, queued: int, spans=None) -> None:
        if len(self.events) >= self.max_events:
            self.dropped += 1
            return
        pid = self.replica
        args = {"batch_size": len(plan.items), "tokens": plan.tokens, "kv_utilization": round(kv, 6)}
        if plan.swap_bytes:
            args["swap_bytes"] = plan.swap_bytes
        if spans is None:
            self._add(
                {
                    "name": plan.kind,
                    "ph": "X",
                    "ts": t0 * 1e6,
                    "dur": dt * 1e6,
                    "pid": pid,
                    "tid": 0,
                    "args": args,
                }
            )
        else:
            for k, start in enumerate(spans):
                self._add(
                    {
                        "name": plan.kind,
                        "ph": "X",
                        "ts": start * 1e6,
                        "dur": dt * 1e6,
                        "pid": pid,
                        "tid": k,
                        "args": args,
                    }
                )
        self._add({"name": "kv_utilization", "ph": "C", "ts": t0 * 1e6, "pid": pid, "args": {"kv": kv}})
        self._add(
            {
                "name": "batch",
                "ph": "C",
                "ts": t0 * 1e6,
                "pid": pid,
                "args": {"batch_size": len(plan.items), "queued": queued},
            }
        )

    def request_queued(self, s, t: float) -> None:
        if self._add(
            {
                "name": "queued",
                "cat": "request",
                "ph": "b",
                "id": s.req_id,
                "ts": t * 1e6,
                "pid": self.replica,
                "args": {"input_tokens": s.input_tokens, "output_tokens": s.output_tokens},
            }
        ):
            self._started[s.req_id] = "queued"

    def request_started(self, s, t: float) -> None:
        if self._started.get(s.req_id) != "queued":
            return
        ts = t * 1e6
        self._add(
            {"name": "queued", "cat": "request", "ph": "e", "id": s.req_id, "ts": ts, "pid": self.replica}
        )
        if self._add(
            {"name": "serving", "cat": "request", "ph": "b", "id": s.req_id, "ts": ts, "pid": self.replica}
        ):
            self._started[s.req_id] = "serving"
        else:
            del self._started[s.req_id]

    def request_done(self, s, t: float) -> None:
        state = self._started.pop(s.req_id, None)
        if state is None:
            return
        # an end event is always written for a begun span, so spans stay balanced
        self.events.append(
            {
                "name": state,
                "cat": "request",
                "ph": "e",
                "id": s.req_id,
                "ts": t * 1e6,
                "pid": self.replica,
                "args": {"preemptions": s.preemptions},
            }
        )

    def to_dict(self, metadata: dict | None = None) -> dict:
        meta = [
            {
                "name": "process_name",
                "ph": "M",
                "pid": self.replica,
                "args": {"name": f"replica {self.replica}"},
            }
        ]
        names = ["step"] if self.pp == 1 else [f"stage {k}" for k in range(self.pp)]
        for k, n in enumerate(names):
            meta.append(
                {"name": "thread_name", "ph": "M", "pid": self.replica, "tid": k, "args": {"name": n}}
            )
        md = dict(metadata or {})
        md["events_dropped"] = self.dropped
        md["time_unit"] = "simulated microseconds"
        return {"traceEvents": meta + self.events, "displayTimeUnit": "ms", "metadata": md}

    def write(self, path: str | Path, metadata: dict | None = None) -> None:
        Path(path).write_text(json.dumps(self.to_dict(metadata)))
