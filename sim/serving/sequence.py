"""The state of one request inside a replica: tokens known, tokens whose KV is cached, timings.

A sequence knows ``num_tokens`` tokens (its prompt plus the outputs generated so far) and holds
the KV of ``num_computed`` of them. A step that computes the rest (``num_tokens - num_computed``
new tokens, all in one step or in chunks) emits the next output token at its end:

- a prefill is ``(input_tokens, 0)``; it emits output token 1 (the TTFT);
- a decode step is ``(1, num_tokens - 1)``: the last output token goes in, its KV is written,
  and the next token comes out. The step making token ``g + 1`` has ``input + g - 1`` tokens of
  context before it;
- after a preemption by recompute the KV is dropped (``num_computed = 0``) and the next step
  prefills the prompt and the outputs so far together, then emits the next token.

Times are simulated seconds.
"""

from __future__ import annotations

WAITING, RUNNING, SWAPPED, TRANSFER, DONE = 0, 1, 2, 3, 4

__all__ = ["DONE", "RUNNING", "SWAPPED", "TRANSFER", "WAITING", "Sequence"]


class Sequence:
    """One request being served (mutable; owned by exactly one replica at a time)."""

    __slots__ = (
        "req_id",
        "arrival_s",
        "input_tokens",
        "output_tokens",
        "prefix_id",
        "prefix_tokens",
        "num_tokens",
        "num_computed",
        "generated",
        "own_blocks",
        "shared_blocks",
        "state",
        "inflight",
        "first_sched_s",
        "first_token_s",
        "last_token_s",
        "itl_max",
        "preemptions",
        "replica",
        "cpu_blocks",
        "prefix_hit_tokens",
        "reserved",
    )

    def __init__(
        self,
        req_id: int,
        arrival_s: float,
        input_tokens: int,
        output_tokens: int,
        prefix_id=None,
        prefix_tokens: int = 0,
    ):
        self.req_id = req_id
        self.arrival_s = arrival_s
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.prefix_id = prefix_id
        self.prefix_tokens = prefix_tokens
        self.num_tokens = input_tokens
        self.num_computed = 0
        self.generated = 0
        self.own_blocks = 0
        self.shared_blocks = 0
        self.state = WAITING
        self.inflight = False
        self.first_sched_s = -1.0
        self.first_token_s = -1.0
        self.last_token_s = -1.0
        self.itl_max = 0.0
        self.preemptions = 0
        self.replica = -1
        self.cpu_blocks = 0
        self.prefix_hit_tokens = 0
        self.reserved = 0  # static batching: blocks reserved for the whole request

    @classmethod
    def from_request(cls, r) -> Sequence:
        return cls(r.id, r.arrival_s, r.input_tokens, r.output_tokens, r.prefix_id, r.prefix_tokens)

    @property
    def remaining(self) -> int:
        """Tokens the next steps must compute before the next output token."""
        return self.num_tokens - self.num_computed

    def __repr__(self) -> str:
        return (
            f"Sequence(id={self.req_id}, in={self.input_tokens}, out={self.generated}/{self.output_tokens}, "
            f"computed={self.num_computed}/{self.num_tokens}, state={self.state})"
        )
