"""The batch of one step: what each request does in it, ``((new_tokens, context_before), ...)``,
checked at the boundary. Split out of workloads/graph.py (which re-exports ``Batch``)."""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels.errors import Problem, SpecError
from workloads.seqs import phase_of



@dataclass(frozen=True)
class Batch:
    """What each request does in one step: ``seqs`` = ((new_tokens, context_before), ...).

    A prefill is ``(L, 0)``, a decode step ``(1, ctx)``, a chunk of a chunked prefill
    ``(chunk, already_done)``. Lengths are in tokens.
    """

    seqs: tuple[tuple[int, int], ...]

    def __post_init__(self):
        try:
            seqs = tuple((s[0], s[1]) for s in self.seqs)
        except (TypeError, IndexError):
            raise SpecError([Problem("must be a sequence of (new_tokens, context_before) pairs",
                                     path="batch")]) from None
        if seqs and all(type(n) is int and type(c) is int and n >= 1 and c >= 0 for n, c in seqs):
            object.__setattr__(self, "seqs", seqs)  # plain valid ints (the usual case): nothing to convert
            return
        problems = []
        if not seqs:
            problems.append(Problem("a batch needs at least one request", path="batch"))
        bad_n = [i for i, (n, _) in enumerate(seqs) if not _is_int(n) or n < 1]
        bad_c = [i for i, (_, c) in enumerate(seqs) if not _is_int(c) or c < 0]
        if bad_n:
            i = bad_n[0]
            problems.append(Problem(f"new tokens must be a positive integer, got {seqs[i][0]!r}"
                                    f" ({len(bad_n)} request(s), first #{i})", path=f"batch.seqs[{i}]"))
        if bad_c:
            i = bad_c[0]
            problems.append(Problem(f"context must be an integer >= 0, got {seqs[i][1]!r}"
                                    f" ({len(bad_c)} request(s), first #{i})", path=f"batch.seqs[{i}]"))
        if problems:
            raise SpecError(problems)
        object.__setattr__(self, "seqs", tuple((int(n), int(c)) for n, c in seqs))

    @classmethod
    def prefill(cls, batch: int, input_len: int) -> Batch:
        """``batch`` requests prefilling ``input_len`` tokens each."""
        _positive("batch", batch)
        _positive("input_len", input_len)
        return cls(((input_len, 0),) * batch)

    @classmethod
    def decode(cls, batch: int, context_len: int) -> Batch:
        """``batch`` requests each decoding one token after ``context_len`` cached tokens."""
        _positive("batch", batch)
        _positive("context_len", context_len)
        return cls(((1, context_len),) * batch)

    @classmethod
    def mixed(cls, prefill=(), decode=()) -> Batch:
        """Prefills (an input length, or a ``(chunk, already_done)`` pair for a chunked prefill)
        and decodes (a context length each) in one step."""
        seqs = [(p, 0) if _is_int(p) else tuple(p) for p in prefill]
        seqs += [(1, c) for c in decode]
        for c in decode:
            _positive("decode context_len", c)
        return cls(tuple(seqs))

    @property
    def requests(self) -> int:
        return len(self.seqs)

    @property
    def tokens(self) -> int:
        """New tokens this step (the M of the token-wise GEMMs)."""
        return sum(n for n, _ in self.seqs)

    @property
    def context_tokens(self) -> int:
        """Tokens already in the KV cache before this step."""
        return sum(c for _, c in self.seqs)

    @property
    def phase(self) -> str:
        """'decode' (every request adds one token to a context), 'prefill' (none does) or 'mixed'."""
        return phase_of(sum(1 for n, c in self.seqs if n == 1 and c > 0), len(self.seqs))

    def split(self) -> tuple[tuple, tuple]:
        """(prefill-like seqs, decode seqs)."""
        dec = tuple(s for s in self.seqs if s[0] == 1 and s[1] > 0)
        pre = tuple(s for s in self.seqs if not (s[0] == 1 and s[1] > 0))
        return pre, dec

    def __str__(self) -> str:
        p = self.phase
        if len(set(self.seqs)) == 1:
            n, c = self.seqs[0]
            return f"{p} {self.requests}x(new={n}, ctx={c})"
        return f"{p} {self.requests} requests, {self.tokens} new tokens, {self.context_tokens} cached"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive(name: str, v) -> None:
    if not _is_int(v) or v < 1:
        raise SpecError([Problem(f"must be a positive integer, got {v!r}", path=name)])
