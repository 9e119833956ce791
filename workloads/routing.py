"""Expert routing of a mixture-of-experts layer: how one step's tokens spread over the experts.

Everything here is an expectation computed in closed form or by exact sums over binomial
probabilities: no sampling, the same inputs always give the same numbers (docs/workloads.md, MoE).

The routing distribution. Each token picks ``top_k`` of ``E`` experts; ``q_e`` is the chance that
one token picks expert ``e`` (``sum q_e = top_k``). Uniform routing (the target of the load-balancing
losses MoE models are trained with) is ``q_e = k / E``. Skewed routing is Zipf-shaped,
``q_e ∝ e^-s`` (experts ranked by popularity), with ``s`` set so that the hottest expert receives
``hot_expert_load`` times the mean load (``ModelSpec.hot_expert_load``: 1.0 = uniform, at most
``E / k``, where the hottest expert is picked by every token). The counts follow: the tokens
expert ``e`` receives from ``T`` tokens are ``N_e ~ Binomial(T, q_e)`` (the experts' counts are
treated as independent; a token's ``k`` picks are distinct, which makes them slightly negatively
correlated: ignored).
"""

from __future__ import annotations

import functools
import math

from hwmodels.errors import Problem, SpecError

__all__ = ["expected_blocks", "expected_max_load", "expected_touched", "expert_probs", "rank_probs"]

_TAIL_SIGMAS = 12.0  # binomial sums cover mean +- 12 standard deviations (the rest is below 1e-30)


def expert_probs(experts: int, top_k: int, hot_load: float = 1.0) -> tuple[float, ...]:
    """Per-expert chance that one token picks each expert (hottest first; sums to ``top_k``).

    ``hot_load`` (>= 1, <= E/k): the hottest expert's load over the mean load; 1.0 = uniform.
    Zipf-shaped ``q_e ∝ e^-s``: ``s`` is found by bisection so that ``E q_1 / k = hot_load``."""
    if isinstance(hot_load, bool) or not isinstance(hot_load, (int, float)) or not math.isfinite(hot_load):
        raise SpecError([Problem(f"must be a number, got {hot_load!r}", path="model.llmsim_hot_expert_load")])
    top = experts / top_k
    if hot_load < 1.0 or hot_load > top + 1e-12:
        raise SpecError([Problem(f"must be between 1 (uniform routing) and {top:g} (experts / experts per "
                                 f"token: the hottest expert picked by every token), got {hot_load!r}",
                                 path="model.llmsim_hot_expert_load")])
    return _zipf_probs(int(experts), int(top_k), float(hot_load))


@functools.lru_cache(maxsize=256)
def _zipf_probs(experts: int, top_k: int, hot_load: float) -> tuple[float, ...]:
    if hot_load == 1.0 or experts == 1:
        return (top_k / experts,) * experts

    def hot(s: float) -> float:  # hottest expert's load over the mean, Zipf exponent s
        return experts / sum((i + 1) ** -s for i in range(experts))

    lo, hi = 0.0, 1.0
    while hot(hi) < hot_load and hi < 1e3:
        hi *= 2.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if hot(mid) < hot_load else (lo, mid)
    s = 0.5 * (lo + hi)
    w = [(i + 1) ** -s for i in range(experts)]
    z = sum(w)
    return tuple(min(1.0, top_k * x / z) for x in w)


def rank_probs(probs: tuple[float, ...], ranks: int) -> tuple[tuple[float, ...], ...]:
    """The experts' probabilities split over ``ranks`` expert-parallel chips, popularity striped
    (rank r holds the r-th, (r + ranks)-th, ... hottest): rank 0 holds the hottest expert."""
    return tuple(tuple(probs[r::ranks]) for r in range(ranks))


def expected_touched(tokens: float, probs: tuple[float, ...]) -> float:
    """Expected experts receiving at least one of ``tokens`` tokens: ``sum_e 1 - (1 - q_e)^T``
    (uniform ``q = k/E``: ``E (1 - (1 - k/E)^T)``)."""
    if not hasattr(tokens, "shape"):
        if tokens <= 0:
            return 0.0
        return sum(1.0 - (1.0 - q) ** tokens for q in probs)
    import numpy as np  # token counts as an array (a block of step sizes, sim.step): the same sum elementwise

    return np.where(tokens > 0, sum(1.0 - (1.0 - q) ** tokens for q in probs), 0.0)


_LOG_FACT = [0.0]  # _LOG_FACT[0][n] = log(n!), grown on demand (a cumulative sum of logs)


def _log_factorials(n_max: int):
    import numpy as np

    t = _LOG_FACT[0]
    if not isinstance(t, np.ndarray) or len(t) <= n_max:
        size = max(n_max + 1, 2 * (len(t) if isinstance(t, np.ndarray) else 1), 1024)
        _LOG_FACT[0] = t = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, size, dtype=float)))))
    return t


@functools.lru_cache(maxsize=2048)
def _pmf_window(tokens: int, q: float):
    """(n values, binomial probabilities) of ``N ~ Binomial(tokens, q)`` over mean +- 12 sigma."""
    import numpy as np

    mu = tokens * q
    sd = math.sqrt(max(tokens * q * (1.0 - q), 0.0))
    lo = max(0, int(mu - _TAIL_SIGMAS * sd) - 1)
    hi = min(tokens, int(math.ceil(mu + _TAIL_SIGMAS * sd)) + 1)
    n = np.arange(lo, hi + 1)
    lf = _log_factorials(tokens)
    logp = lf[tokens] - lf[n] - lf[tokens - n] + n * math.log(q) + (tokens - n) * math.log1p(-q)
    return n, np.exp(logp)


@functools.lru_cache(maxsize=8192)
def _blocks_one(tokens: int, q: float, block: int) -> float:
    """E[ceil(N / block)] for N ~ Binomial(tokens, q)."""
    if tokens <= 0 or q <= 0.0:
        return 0.0
    if q >= 1.0:
        return float(math.ceil(tokens / block))
    n, p = _pmf_window(tokens, q)
    return float((p * -(-n // block)).sum())


_GRIDS: dict = {}  # (token counts' bytes, q) -> their windows as one grid (the last few blocks of step sizes)


def _pmf_grid(tokens, q: float):
    """:func:`_pmf_window` of every count of the integer array ``tokens`` at once: (n, probabilities), one row
    per count, each row the count's own window (the same bounds and terms) padded with probability 0."""
    import numpy as np

    key = (tokens.tobytes(), q)
    got = _GRIDS.get(key)
    if got is not None:
        return got
    mu = tokens * q
    sd = np.sqrt(np.maximum(tokens * q * (1.0 - q), 0.0))
    lo = np.maximum(0, np.trunc(mu - _TAIL_SIGMAS * sd).astype(np.int64) - 1)
    hi = np.minimum(tokens, np.ceil(mu + _TAIL_SIGMAS * sd).astype(np.int64) + 1)
    n = lo[:, None] + np.arange(int((hi - lo).max()) + 1)[None, :]
    inside = n <= hi[:, None]
    n = np.where(inside, n, lo[:, None])
    lf = _log_factorials(int(tokens.max()))
    t = tokens[:, None]
    logp = lf[t] - lf[n] - lf[t - n] + n * math.log(q) + (t - n) * math.log1p(-q)
    if len(_GRIDS) >= 64:
        _GRIDS.clear()
    got = _GRIDS[key] = (n, np.where(inside, np.exp(logp), 0.0))
    return got


def _blocks_many(tokens, q: float, block: int):
    """:func:`_blocks_one` of every count of the array ``tokens`` (any shape; counts are whole numbers)."""
    import numpy as np

    t = np.asarray(tokens).astype(np.int64)
    flat = t.ravel()
    if q <= 0.0:
        return np.zeros(t.shape)
    if q >= 1.0:
        return np.where(t > 0, np.ceil(t / block), 0.0)
    n, p = _pmf_grid(np.maximum(flat, 0), q)
    out = (p * -(-n // block)).sum(axis=1)
    return np.where(flat > 0, out, 0.0).reshape(t.shape)


def expected_blocks(tokens: int, probs: tuple[float, ...], block: int) -> float:
    """Expected row blocks of ``block`` rows over the experts: ``sum_e E[ceil(N_e / block)]``, each
    expert's token rows padded up to the block (the grouped GEMM's per-expert M padding; vLLM's
    ``moe_align_block_size`` pads to BLOCK_SIZE_M the same way). Experts of equal ``q`` are
    computed once. ``tokens`` may be an array of counts (a block of step sizes, sim.step): the same sums
    elementwise."""
    out = 0.0
    if hasattr(tokens, "shape"):
        for q in set(probs):
            out = out + probs.count(q) * _blocks_many(tokens, q, int(block))
        return out
    for q in set(probs):
        out += probs.count(q) * _blocks_one(int(tokens), q, int(block))
    return out


def expected_max_load(tokens, groups: tuple[tuple[float, ...], ...]):
    """Expected rows of the busiest group of experts (an expert-parallel rank) when ``tokens``
    tokens are routed: ``E[max_r L_r]``, ``L_r = sum_{e in r} N_e``, each ``L_r`` taken as normal
    with the binomial sums' mean ``T sum q_e`` and variance ``T sum q_e (1 - q_e)``, the ranks as
    independent: ``E[max] = a + integral_a^b (1 - prod_r F_r(x)) dx`` over ``[a, b]`` = the
    smallest mean - 10 sigma to the largest mean + 10 sigma (2,001 points, trapezoids). One group: its mean.

    Ranks of equal sums (uniform routing striped over the ranks) have one mean ``mu T`` and one
    sigma ``sd sqrt(T)``: the grid is then the same in standard units for every ``T`` and the integral
    is ``mu T + sd sqrt(T) (K_R - 10)``, ``K_R`` that integral of ``1 - Phi(z)^R`` over z = -10..10
    (:func:`_max_normal_k`, once per rank count). ``tokens`` may be an integer array (a block of step
    sizes, sim.step): the same values elementwise."""
    means = [sum(g) for g in groups]  # per token
    if len(groups) <= 1:
        return tokens * max(means, default=0.0)
    var = [sum(q * (1.0 - q) for q in g) for g in groups]
    if len(_count(zip(means, var))) == 1 and var[0] > 0.0:  # every rank alike
        k = _max_normal_k(len(groups))
        if hasattr(tokens, "shape"):
            import numpy as np

            t = np.maximum(tokens, 0).astype(float)
            return means[0] * t + math.sqrt(var[0]) * np.sqrt(t) * (k - 10.0)
        if tokens <= 0:
            return 0.0
        return means[0] * tokens + math.sqrt(var[0]) * math.sqrt(tokens) * (k - 10.0)
    if hasattr(tokens, "shape"):  # ranks of unequal sums (skewed routing): each count on its own grid
        import numpy as np

        return np.array([_max_load_grid(int(t), tuple(means), tuple(var)) for t in np.ravel(tokens).tolist()],
                        dtype=float).reshape(np.shape(tokens))
    return _max_load_grid(tokens, tuple(means), tuple(var))


@functools.lru_cache(maxsize=64)
def _max_normal_k(ranks: int) -> float:
    """``integral_{-10}^{10} 1 - Phi(z)^ranks dz`` on 2,001 points (trapezoids): the expected maximum of
    ``ranks`` standard normals is ``K - 10`` (:func:`expected_max_load`)."""
    import numpy as np

    z = np.linspace(-10.0, 10.0, 2001)
    tail = 1.0 - (0.5 * (1.0 + _erf(z / math.sqrt(2.0)))) ** ranks
    return float(((tail[:-1] + tail[1:]) * 0.5 * (z[1] - z[0])).sum())


@functools.lru_cache(maxsize=4096)
def _max_load_grid(tokens: int, means: tuple, var: tuple) -> float:
    """:func:`expected_max_load` of ``tokens`` tokens over ranks of per-token ``means`` and variances ``var``
    (the general case: the integral on its own grid)."""
    import numpy as np

    if tokens <= 0:
        return 0.0
    means = [tokens * m for m in means]
    sds = [math.sqrt(tokens * v) for v in var]
    sd = max(sds)
    if sd <= 0.0:
        return max(means)
    a, b = min(means) - 10.0 * sd, max(means) + 10.0 * sd
    x = np.linspace(a, b, 2001)
    cdf = np.ones_like(x)
    for (m, s), n in _count((m, s) for m, s in zip(means, sds)):
        f = 0.5 * (1.0 + _erf((x - m) / (s * math.sqrt(2.0)))) if s > 0 else (x >= m).astype(float)
        cdf = cdf * f ** n
    tail = 1.0 - cdf
    return float(a + ((tail[:-1] + tail[1:]) * 0.5 * (x[1] - x[0])).sum())


def _count(items) -> list:
    """[(item, times it occurs)] in first-seen order (ranks with equal loads are computed once)."""
    out: dict = {}
    for it in items:
        out[it] = out.get(it, 0) + 1
    return list(out.items())


def _erf(z):
    import numpy as np

    return np.array([math.erf(v) for v in z.tolist()])
