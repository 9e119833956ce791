"""Request scenarios: arrival processes x length distributions -> a deterministic request stream.

A :class:`Scenario` turns a seed into a stream of :class:`Request` s. Everything random is drawn
from numpy Generators created for that one call (no global seeding), in vectorized chunks of
``CHUNK`` requests, so a million requests stream without a list in memory and generate in well
under a second as arrays.

Determinism: the same scenario and seed give the same requests, bit for bit, whether read through
:meth:`Scenario.requests`, :meth:`Scenario.chunks` or :meth:`Scenario.to_frame`. The seed is split
(``SeedSequence.spawn``) into independent streams for arrivals, input lengths, output lengths and
prefix ids, so changing e.g. the output-length distribution leaves the arrival times of the same
seed unchanged (common random numbers across experiments).

Conventions:

- The first request arrives at t = 0 for every arrival process; the following arrival times are
  the running sum of the inter-arrival gaps. A trace replay keeps the trace's own times (the
  shipped Azure traces start at 0).
- With ``duration_s``, the requests are those arriving at ``t < duration_s``; with both
  ``num_requests`` and ``duration_s`` the stream stops at whichever limit comes first.
- Token lengths are integers >= 1.
- Prefix sharing (``shared_prefix_tokens`` > 0 and ``num_prefixes`` > 0): every request gets a
  ``prefix_id`` drawn uniformly from ``0 .. num_prefixes-1`` and ``prefix_tokens =
  shared_prefix_tokens``; its ``input_tokens`` is the whole prompt, i.e. the shared prefix plus a
  draw from the input-length distribution (the part after the prefix). Two requests with the
  same ``prefix_id`` share their first ``prefix_tokens`` prompt tokens.

Names: the constant-spacing *arrival* process is :class:`FixedRate` (``Fixed(n)`` is the constant
*length* distribution).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from hwmodels.limits import check_bound
from hwmodels.errors import Problem, SpecError

__all__ = [
    "CHUNK",
    "AllAtOnce",
    "ArrivalProcess",
    "Empirical",
    "Fixed",
    "FixedRate",
    "Gamma",
    "LengthDist",
    "LogNormal",
    "Poisson",
    "Replay",
    "Request",
    "Scenario",
    "TraceArrivals",
    "Uniform",
    "Zipf",
    "arrival_process",
    "parse_rate",
]

#: Requests generated per vectorized step. Part of the definition of a seed's stream: changing it
#: may change the requests a seed gives (integer draws are not chunk-size invariant in numpy).
CHUNK = 1 << 16

# Largest Zipf support sampled exactly from a table; larger ranges use a continuous approximation.
_ZIPF_TABLE_MAX = 1 << 20


@dataclass(frozen=True, slots=True)
class Request:
    """One request: when it arrives and how many tokens go in and come out."""

    id: int
    arrival_s: float
    input_tokens: int  # the whole prompt, shared prefix included
    output_tokens: int
    prefix_id: int | None = None  # requests with the same id share their first prefix_tokens tokens
    prefix_tokens: int = 0


# --------------------------------------------------------------------------------------------
# validation helpers: every problem of one object is reported at once, named by parameter


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


class _Checker:
    def __init__(self, owner: str):
        self.owner = owner
        self.problems: list[Problem] = []

    def add(self, param: str, message: str) -> None:
        self.problems.append(Problem(message, path=f"{self.owner}.{param}"))

    def positive(self, param: str, x, *, allow_inf: bool = False) -> None:
        if not _is_real(x) or math.isnan(x):
            self.add(param, f"must be a number, got {x!r}")
        elif x <= 0:
            self.add(param, f"must be > 0, got {x!r}")
        elif math.isinf(x) and not allow_inf:
            self.add(param, f"must be finite, got {x!r}")

    def int_at_least(self, param: str, x, lo: int) -> None:
        if not _is_int(x):
            self.add(param, f"must be an integer, got {x!r}")
        elif x < lo:
            self.add(param, f"must be >= {lo}, got {x!r}")

    def done(self) -> None:
        if self.problems:
            raise SpecError(self.problems)


def _set(obj, name, value) -> None:
    object.__setattr__(obj, name, value)


def _frozen_array(values, dtype, owner: str, param: str, *, min_value=None, integral=False) -> np.ndarray:
    """A read-only 1-D copy of ``values``, validated (finite, >= min_value, whole numbers)."""
    try:
        a = np.array(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise SpecError(Problem(f"must be a sequence of numbers, got {type(values).__name__}",
                                path=f"{owner}.{param}")) from None
    msgs = []
    if a.size == 0:
        msgs.append("must not be empty")
    bad = ~np.isfinite(a)
    if bad.any():
        msgs.append(f"{int(bad.sum())} value(s) are NaN or infinite (first at index {int(np.argmax(bad))})")
    else:
        if min_value is not None and (a < min_value).any():
            i = int(np.argmax(a < min_value))
            msgs.append(f"values must be >= {min_value}; index {i} is {a[i]:g}")
        if integral and (a != np.round(a)).any():
            i = int(np.argmax(a != np.round(a)))
            msgs.append(f"values must be whole numbers; index {i} is {a[i]:g}")
    if msgs:
        raise SpecError([Problem(m, path=f"{owner}.{param}") for m in msgs])
    out = a.astype(dtype)
    out.setflags(write=False)
    return out


# --------------------------------------------------------------------------------------------
# arrival processes


class ArrivalProcess:
    """Base of arrival processes: a (possibly infinite) stream of non-decreasing arrival times."""

    #: number of arrivals when the process is finite (a trace without looping), else None
    @property
    def finite_count(self) -> int | None:
        return None

    #: True when all arrivals happen at t = 0 (then a duration cannot bound the stream)
    @property
    def instantaneous(self) -> bool:
        return False

    # every process has a ``rate_rps`` (a field or a property): its nominal mean rate, req/s

    def _stream(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """Successive chunks (float64 arrays, CHUNK long except maybe the last) of arrival times."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError


def _gap_stream(rng, draw: Callable[[int], np.ndarray]) -> Iterator[np.ndarray]:
    """Arrival times from inter-arrival gaps ``draw(n)``; the first request arrives at t = 0."""
    t0 = 0.0
    first = True
    while True:
        gaps = draw(CHUNK)
        if first:
            gaps[0] = 0.0
            first = False
        t = np.cumsum(gaps)
        t += t0
        t0 = float(t[-1])
        yield t


def _zeros_stream() -> Iterator[np.ndarray]:
    while True:
        yield np.zeros(CHUNK)


class _RateArrivals(ArrivalProcess):
    """A process defined by a ``rate_rps`` field, where ``rate_rps=inf`` means all at t = 0."""

    @property
    def instantaneous(self) -> bool:
        return math.isinf(self.rate_rps)

    def _stream(self, rng):
        return _zeros_stream() if self.instantaneous else self._finite_stream(rng)

    def _finite_stream(self, rng) -> Iterator[np.ndarray]:
        raise NotImplementedError


@dataclass(frozen=True)
class Poisson(_RateArrivals):
    """Poisson arrivals: exponential gaps with mean 1/rate_rps. ``rate_rps=inf``: all at t=0."""

    rate_rps: float

    def __post_init__(self):
        c = _Checker("Poisson")
        c.positive("rate_rps", self.rate_rps, allow_inf=True)
        c.done()

    def _finite_stream(self, rng):
        scale = 1.0 / self.rate_rps
        return _gap_stream(rng, lambda n: rng.exponential(scale, n))

    def to_dict(self) -> dict:
        return {"type": "poisson", "rate_rps": float(self.rate_rps)}


@dataclass(frozen=True)
class Gamma(_RateArrivals):
    """Bursty arrivals: gamma-distributed gaps with mean 1/rate_rps and coefficient of variation cv.

    cv = 1 is Poisson; cv > 1 is burstier (clumps and lulls); cv < 1 is more regular.
    Shape k = 1/cv^2, scale = 1/(rate_rps k). ``rate_rps=inf``: all at t=0.
    """

    rate_rps: float
    cv: float = 1.0

    def __post_init__(self):
        c = _Checker("Gamma")
        c.positive("rate_rps", self.rate_rps, allow_inf=True)
        c.positive("cv", self.cv)
        if not c.problems and not CV_MIN <= self.cv <= CV_MAX:
            c.add("cv", _CV_RANGE + f", got {self.cv!r}")
        c.done()

    def _finite_stream(self, rng):
        shape = 1.0 / (self.cv * self.cv)
        scale = 1.0 / (self.rate_rps * shape)
        return _gap_stream(rng, lambda n: rng.gamma(shape, scale, n))

    def to_dict(self) -> dict:
        return {"type": "gamma", "rate_rps": float(self.rate_rps), "cv": float(self.cv)}


@dataclass(frozen=True)
class FixedRate(_RateArrivals):
    """Constant spacing: request i arrives at exactly i / rate_rps. ``rate_rps=inf``: all at t=0."""

    rate_rps: float

    def __post_init__(self):
        c = _Checker("FixedRate")
        c.positive("rate_rps", self.rate_rps, allow_inf=True)
        c.done()

    def _finite_stream(self, rng):
        base = 0
        idx = np.arange(CHUNK, dtype=np.float64)
        while True:
            yield (idx + base) / self.rate_rps  # from the index: no accumulated rounding
            base += CHUNK

    def to_dict(self) -> dict:
        return {"type": "fixed", "rate_rps": float(self.rate_rps)}


@dataclass(frozen=True)
class AllAtOnce(ArrivalProcess):
    """Offline / batch: every request arrives at t = 0 (what ``rate=inf`` means)."""

    @property
    def instantaneous(self) -> bool:
        return True

    @property
    def rate_rps(self) -> float:
        return math.inf

    def _stream(self, rng):
        return _zeros_stream()

    def to_dict(self) -> dict:
        return {"type": "all-at-once", "rate_rps": math.inf}


@dataclass(frozen=True, eq=False)
class TraceArrivals(ArrivalProcess):
    """Arrival times taken from a trace, replayed ``speedup`` times faster (times / speedup).

    ``loop=True`` repeats the trace end to end (each cycle shifted by the trace's span plus one
    mean gap) so it can feed any number of requests; otherwise the stream ends with the trace.
    Random-free: the seed does not matter. Equality is identity (it holds an array).
    """

    times: np.ndarray = field(repr=False)
    speedup: float = 1.0
    loop: bool = False

    def __post_init__(self):
        c = _Checker("TraceArrivals")
        c.positive("speedup", self.speedup)
        if not isinstance(self.loop, bool):
            c.add("loop", f"must be true or false, got {self.loop!r}")
        c.done()
        t = _frozen_array(self.times, np.float64, "TraceArrivals", "times", min_value=0.0)
        if (np.diff(t) < 0).any():
            i = int(np.argmax(np.diff(t) < 0)) + 1
            raise SpecError(Problem(f"must be non-decreasing; index {i} ({t[i]:g}) < index {i - 1} ({t[i - 1]:g})",
                                    path="TraceArrivals.times"))
        if self.loop and (t.size < 2 or t[-1] == t[0]):
            raise SpecError(Problem("looping needs at least two distinct arrival times",
                                    path="TraceArrivals.loop"))
        _set(self, "times", t)

    @property
    def finite_count(self) -> int | None:
        return None if self.loop else int(self.times.size)

    @property
    def instantaneous(self) -> bool:
        return bool(self.times[-1] == 0.0) and not self.loop

    @property
    def rate_rps(self) -> float:
        n = self.times.size
        span = float(self.times[-1] - self.times[0]) / self.speedup
        return math.inf if span == 0 else (n - 1) / span

    @property
    def period_s(self) -> float:
        """Offset between successive cycles when looping (trace seconds, before speedup)."""
        t = self.times
        return float(t[-1] - t[0]) * t.size / (t.size - 1) if t.size > 1 else 0.0

    def _stream(self, rng):
        t = self.times / self.speedup
        if not self.loop:
            return (t[i:i + CHUNK] for i in range(0, t.size, CHUNK))
        return self._loop(t, self.period_s / self.speedup)

    @staticmethod
    def _loop(t, period):
        n = t.size
        pos = 0
        while True:
            idx = np.arange(pos, pos + CHUNK)
            cycle, i = np.divmod(idx, n)
            yield t[i] + cycle * period
            pos += CHUNK

    def to_dict(self) -> dict:
        return {"type": "trace", "num_arrivals": int(self.times.size), "speedup": float(self.speedup),
                "loop": self.loop, "rate_rps": self.rate_rps}


#: The gamma process draws gaps of shape 1/cv^2: below CV_MIN the gaps equal the fixed rate's to
#: within 1e-6 (and the shape overflows for cv near 1e-160), above CV_MAX nearly every request falls
#: into one burst (and the shape underflows)
CV_MIN, CV_MAX = 1e-3, 1e3
_CV_RANGE = f"must be 0 (fixed rate) or between {CV_MIN:g} and {CV_MAX:g}"


def arrival_process(rate_rps: float, cv: float = 1.0) -> ArrivalProcess:
    """The usual choice for a CLI ``--rate``/``--cv``: inf -> AllAtOnce, cv=1 -> Poisson,
    cv=0 -> FixedRate, otherwise Gamma."""
    c = _Checker("arrivals")
    c.positive("rate_rps", rate_rps, allow_inf=True)
    if not _is_real(cv) or math.isnan(cv) or cv < 0 or math.isinf(cv):
        c.add("cv", f"must be a finite number >= 0, got {cv!r}")
    elif cv != 0 and not CV_MIN <= cv <= CV_MAX:
        c.add("cv", _CV_RANGE + f", got {cv!r}")
    c.done()
    if math.isinf(rate_rps):
        return AllAtOnce()
    if cv == 0:
        return FixedRate(rate_rps)
    if cv == 1:
        return Poisson(rate_rps)
    return Gamma(rate_rps, cv)


def parse_rate(text: str) -> float:
    """Parse a request rate for the CLI: '10', '2.5', 'inf' (all at once). Returns requests/s."""
    s = str(text).strip().lower()
    if s.endswith("rps"):
        s = s[:-3].strip()
    elif s.endswith("/s"):
        s = s[:-2].strip()
    try:
        r = float(s)
    except ValueError:
        raise SpecError(Problem(f"expected a number of requests/s or 'inf', got {text!r}", path="rate")) from None
    if math.isnan(r) or r <= 0:
        raise SpecError(Problem(f"must be > 0 (or 'inf' for all at once), got {text!r}", path="rate"))
    msg = None if math.isinf(r) else check_bound("rate", r, repr(text))
    if msg:
        raise SpecError(Problem(msg + " (or 'inf' for all at once)", path="rate"))
    return r


# --------------------------------------------------------------------------------------------
# length distributions


class LengthDist:
    """Base of token-length distributions: integers >= 1."""

    def _sampler(self, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
        """A function n -> int64 array of n lengths (may keep state, e.g. a replay position)."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n lengths as an int64 array (a fresh sampler: a Replay starts from its beginning)."""
        return self._sampler(rng)(n)

    @property
    def mean_tokens(self) -> float:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class Fixed(LengthDist):
    """Always n tokens."""

    n: int

    def __post_init__(self):
        c = _Checker("Fixed")
        c.int_at_least("n", self.n, 1)
        c.done()

    def _sampler(self, rng):
        n0 = int(self.n)
        return lambda n: np.full(n, n0, dtype=np.int64)

    @property
    def mean_tokens(self) -> float:
        return float(self.n)

    def to_dict(self) -> dict:
        return {"type": "fixed", "n": int(self.n)}


@dataclass(frozen=True)
class Uniform(LengthDist):
    """Uniform integers in [lo, hi], both ends included."""

    lo: int
    hi: int

    def __post_init__(self):
        c = _Checker("Uniform")
        c.int_at_least("lo", self.lo, 1)
        c.int_at_least("hi", self.hi, 1)
        if not c.problems and self.lo > self.hi:
            c.add("lo", f"must be <= hi, got lo={self.lo} > hi={self.hi}")
        c.done()

    def _sampler(self, rng):
        lo, hi = int(self.lo), int(self.hi)
        return lambda n: rng.integers(lo, hi, n, dtype=np.int64, endpoint=True)

    @property
    def mean_tokens(self) -> float:
        return (self.lo + self.hi) / 2

    def to_dict(self) -> dict:
        return {"type": "uniform", "lo": int(self.lo), "hi": int(self.hi)}


@lru_cache(maxsize=8)
def _zipf_cdf(a: float, lo: int, hi: int) -> np.ndarray:
    k = np.arange(lo, hi + 1, dtype=np.float64)
    w = k ** (-a)
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    cdf.setflags(write=False)
    return cdf


@dataclass(frozen=True)
class Zipf(LengthDist):
    """Bounded Zipf (discrete power law): P(k) proportional to k^-a for integers lo <= k <= hi.

    Any a > 0 works (the support is bounded). Sampled exactly by table look-up when
    hi - lo < 2^20, else by the continuous truncated power law on [lo, hi + 1) rounded down.
    """

    a: float
    lo: int
    hi: int

    def __post_init__(self):
        c = _Checker("Zipf")
        c.positive("a", self.a)
        c.int_at_least("lo", self.lo, 1)
        c.int_at_least("hi", self.hi, 1)
        if not c.problems and self.lo > self.hi:
            c.add("lo", f"must be <= hi, got lo={self.lo} > hi={self.hi}")
        c.done()

    def _sampler(self, rng):
        a, lo, hi = float(self.a), int(self.lo), int(self.hi)
        if hi - lo < _ZIPF_TABLE_MAX:
            cdf = _zipf_cdf(a, lo, hi)

            def draw(n):
                idx = np.searchsorted(cdf, rng.random(n), side="right")
                return np.minimum(idx, hi - lo).astype(np.int64) + lo
            return draw

        x0, x1 = float(lo), float(hi + 1)

        def draw_cont(n):  # inverse CDF of the density ~ x^-a on [x0, x1)
            u = rng.random(n)
            if a == 1.0:
                x = x0 * np.exp(u * math.log(x1 / x0))
            else:
                b = 1.0 - a
                x = (x0 ** b + u * (x1 ** b - x0 ** b)) ** (1.0 / b)
            return np.clip(np.floor(x), lo, hi).astype(np.int64)
        return draw_cont

    @property
    def mean_tokens(self) -> float:
        if self.hi - self.lo < _ZIPF_TABLE_MAX:
            k = np.arange(self.lo, self.hi + 1, dtype=np.float64)
            w = k ** (-float(self.a))
            return float((k * w).sum() / w.sum())
        return math.nan

    def to_dict(self) -> dict:
        return {"type": "zipf", "a": float(self.a), "lo": int(self.lo), "hi": int(self.hi)}


@dataclass(frozen=True)
class LogNormal(LengthDist):
    """Log-normal lengths with arithmetic mean ``mean`` (tokens) and log-space std dev ``sigma``.

    The underlying normal has mu = ln(mean) - sigma^2/2. Draws are rounded to integers and clipped
    to [1, hi] (hi=None: no upper bound); clipping shifts the mean slightly when it bites.
    """

    mean: float
    sigma: float
    hi: int | None = None

    def __post_init__(self):
        c = _Checker("LogNormal")
        c.positive("mean", self.mean)
        if not _is_real(self.sigma) or not math.isfinite(self.sigma) or self.sigma < 0:
            c.add("sigma", f"must be a finite number >= 0, got {self.sigma!r}")
        if self.hi is not None:
            c.int_at_least("hi", self.hi, 1)
        c.done()

    def _sampler(self, rng):
        s = float(self.sigma)
        mu = math.log(self.mean) - s * s / 2
        hi = np.inf if self.hi is None else int(self.hi)

        def draw(n):
            x = np.rint(rng.lognormal(mu, s, n))
            return np.clip(x, 1, min(hi, 2**62)).astype(np.int64)
        return draw

    @property
    def mean_tokens(self) -> float:
        return float(self.mean)

    def to_dict(self) -> dict:
        return {"type": "lognormal", "mean": float(self.mean), "sigma": float(self.sigma), "hi": self.hi}


@dataclass(frozen=True, eq=False)
class Empirical(LengthDist):
    """Lengths drawn uniformly with replacement from ``values`` (e.g. a trace's column).

    Equality is identity (it holds an array).
    """

    values: np.ndarray = field(repr=False)

    def __post_init__(self):
        _set(self, "values", _frozen_array(self.values, np.int64, type(self).__name__, "values",
                                           min_value=1, integral=True))

    def _sampler(self, rng):
        v = self.values
        return lambda n: v[rng.integers(0, v.size, n)]

    @property
    def mean_tokens(self) -> float:
        return float(self.values.mean())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.values.size}, mean={self.mean_tokens:.1f})"

    def to_dict(self) -> dict:
        v = self.values
        return {"type": "empirical", "n": int(v.size), "mean": self.mean_tokens,
                "min": int(v.min()), "max": int(v.max())}


@dataclass(frozen=True, eq=False, repr=False)
class Replay(Empirical):
    """The values in order (cycling at the end): replays a trace column row by row.

    Paired with :class:`TraceArrivals` of the same trace, request i gets row i's lengths.
    """

    def _sampler(self, rng):
        v = self.values
        pos = 0

        def draw(n):
            nonlocal pos
            idx = (np.arange(pos, pos + n)) % v.size
            pos += n
            return v[idx]
        return draw

    def to_dict(self) -> dict:
        return {**super().to_dict(), "type": "replay"}


def _as_length(x, name: str) -> LengthDist:
    if isinstance(x, LengthDist):
        return x
    if _is_int(x):
        return Fixed(int(x))
    raise SpecError(Problem(f"must be a length distribution (Fixed, Uniform, Zipf, LogNormal, Empirical) "
                            f"or an integer, got {x!r}", path=f"Scenario.{name}"))


# --------------------------------------------------------------------------------------------
# scenario


@dataclass(frozen=True)
class Scenario:
    """A request stream: arrivals x input lengths x output lengths, bounded by count or duration.

    ``input_tokens``/``output_tokens`` accept an int as shorthand for ``Fixed(n)``. At least one of
    ``num_requests``/``duration_s`` is needed unless the arrivals are finite (a trace replay).
    """

    arrivals: ArrivalProcess
    input_tokens: LengthDist | int
    output_tokens: LengthDist | int
    num_requests: int | None = None
    duration_s: float | None = None
    shared_prefix_tokens: int = 0
    num_prefixes: int = 0
    name: str = ""

    def __post_init__(self):
        c = _Checker("Scenario")
        if not isinstance(self.arrivals, ArrivalProcess):
            c.add("arrivals", f"must be an arrival process (Poisson, Gamma, FixedRate, AllAtOnce, "
                              f"TraceArrivals), got {self.arrivals!r}")
        for nm in ("input_tokens", "output_tokens"):
            try:
                _set(self, nm, _as_length(getattr(self, nm), nm))
            except SpecError as e:
                c.problems += e.problems
        if self.num_requests is not None:
            c.int_at_least("num_requests", self.num_requests, 1)
        if self.duration_s is not None:
            c.positive("duration_s", self.duration_s)
        c.int_at_least("shared_prefix_tokens", self.shared_prefix_tokens, 0)
        c.int_at_least("num_prefixes", self.num_prefixes, 0)
        if not c.problems and (self.shared_prefix_tokens > 0) != (self.num_prefixes > 0):
            c.add("num_prefixes", "shared_prefix_tokens and num_prefixes go together: set both > 0 "
                                  f"or both 0 (got {self.shared_prefix_tokens} and {self.num_prefixes})")
        if not c.problems:
            arr = self.arrivals
            if self.num_requests is None:
                if self.duration_s is None and arr.finite_count is None:
                    c.add("num_requests", "give num_requests or duration_s (the arrivals never end)")
                elif self.duration_s is not None and arr.instantaneous and arr.finite_count is None:
                    c.add("num_requests", "all requests arrive at t=0, so duration_s cannot bound them: "
                                          "give num_requests")
            elif arr.finite_count is not None and self.num_requests > arr.finite_count:
                c.add("num_requests", f"the trace has only {arr.finite_count} arrivals, asked for "
                                      f"{self.num_requests} (replay with loop=True to repeat it)")
        c.done()

    @property
    def prefix_sharing(self) -> bool:
        return self.num_prefixes > 0

    def chunks(self, seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """The stream as successive dicts of equal-length arrays: request_id, arrival_s,
        input_tokens, output_tokens (+ prefix_id, prefix_tokens when prefixes are shared)."""
        if not _is_int(seed) or seed < 0:
            raise SpecError(Problem(f"must be an integer >= 0, got {seed!r}", path="seed"))
        ss = np.random.SeedSequence(int(seed))
        r_arr, r_in, r_out, r_pre = (np.random.default_rng(s) for s in ss.spawn(4))
        times = self.arrivals._stream(r_arr)
        draw_in = self.input_tokens._sampler(r_in)
        draw_out = self.output_tokens._sampler(r_out)
        remaining = self.num_requests
        next_id = 0
        for t in times:
            done = False
            if remaining is not None and t.size >= remaining:
                t, done = t[:remaining], True
            if self.duration_s is not None and t.size and t[-1] >= self.duration_s:
                t, done = t[:int(np.searchsorted(t, self.duration_s, side="left"))], True
            n = t.size
            if n == 0:
                return
            out = {
                "request_id": np.arange(next_id, next_id + n, dtype=np.int64),
                "arrival_s": np.asarray(t, dtype=np.float64),
                "input_tokens": draw_in(n),
                "output_tokens": draw_out(n),
            }
            if self.prefix_sharing:
                out["prefix_id"] = r_pre.integers(0, self.num_prefixes, n, dtype=np.int64)
                out["prefix_tokens"] = np.full(n, self.shared_prefix_tokens, dtype=np.int64)
                out["input_tokens"] = out["input_tokens"] + self.shared_prefix_tokens
            yield out
            next_id += n
            if remaining is not None:
                remaining -= n
            if done:
                return

    def requests(self, seed: int = 0) -> Iterator[Request]:
        """The stream, one :class:`Request` at a time (nothing is kept in memory)."""
        for ch in self.chunks(seed):
            yield from _iter_requests(ch)

    def to_frame(self, seed: int = 0):
        """All requests as a pandas DataFrame with columns request_id, arrival_s, input_tokens,
        output_tokens (+ prefix_id, prefix_tokens when prefixes are shared)."""
        import pandas as pd

        parts = list(self.chunks(seed))
        cols = ["request_id", "arrival_s", "input_tokens", "output_tokens"]
        if self.prefix_sharing:
            cols += ["prefix_id", "prefix_tokens"]
        if not parts:
            return pd.DataFrame({c: np.array([], dtype=np.float64 if c == "arrival_s" else np.int64)
                                 for c in cols})
        return pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in cols})

    def to_dict(self) -> dict:
        d = {"name": self.name, "arrivals": self.arrivals.to_dict(),
             "input_tokens": self.input_tokens.to_dict(), "output_tokens": self.output_tokens.to_dict(),
             "num_requests": self.num_requests, "duration_s": self.duration_s}
        if self.prefix_sharing:
            d.update(shared_prefix_tokens=self.shared_prefix_tokens, num_prefixes=self.num_prefixes)
        return d


def _iter_requests(ch: dict[str, np.ndarray]) -> Iterator[Request]:
    cols = [ch["request_id"].tolist(), ch["arrival_s"].tolist(),
            ch["input_tokens"].tolist(), ch["output_tokens"].tolist()]
    if "prefix_id" in ch:
        cols += [ch["prefix_id"].tolist(), ch["prefix_tokens"].tolist()]
    R = Request
    for row in zip(*cols):
        yield R(*row)
