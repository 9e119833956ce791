"""Request-level metrics from step totals: the one place TPOT, e2e, throughput, USD per million
tokens, joules per token, MFU and MBU are computed from priced steps.

Used by the static predictor (sim/predict.py, Python floats) and the static sweep evaluator
(sim/sweep/static.py, arrays over design points): both pass the same totals.

For a static batch of B requests of L prompt and O output tokens on ``chips`` chips::

    TPOT       = decode time / (O - 1)              (0 with one output token)
    e2e        = TTFT + decode time
    throughput = B x O / e2e                        (per chip: / chips)
    USD/Mtok   = USD/s x e2e / (B x O) x 1e6        (input: USD/s x TTFT / (B x L) x 1e6)
    energy     = chips x (step energy + idle W x (e2e - busy / pp))   J; / (B x O) per token
                 (each chip runs its pipeline stage once per step and idles while the others run)
    MFU        = FLOPs x chips / (e2e x chips x peak FLOP/s of the math dtype)
    MBU        = decode bytes x chips / (decode time x chips x the home level's bandwidth)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwmodels.arith import vwhere


@dataclass
class RequestTotals:
    """Per-chip sums over one static batch's steps (numbers, or arrays over design points)."""

    ttft: object  # seconds to the first token (prefill, plus any draft prefill and link time)
    decode_time: object  # seconds of the O - 1 decode steps
    busy: object  # seconds this chip's stage computes (prefill + decode, before / pp)
    energy: object  # joules of the priced steps, per chip per stage
    flops: object  # FLOPs per chip over the request
    decode_bytes: object  # bytes at the weights/KV level over the decode steps, per chip


def _div(a, b, default):
    """a / b, or ``default`` where b <= 0 (numbers or arrays; never divides by zero; NaN stays NaN)."""
    ok = vwhere(b <= 0, False, True)
    return vwhere(ok, a / vwhere(ok, b, 1.0), default)


def request_metrics(t: RequestTotals, *, batch: int, input_len: int, output_len: int, chips: int, pp: int,
                    idle_w, peak_flops, home_bandwidth, usd_per_s) -> dict:
    """The request-level metrics (module docstring); ``usd_per_s`` None -> USD figures None."""
    steps = output_len - 1
    out_tokens = batch * output_len
    e2e = t.ttft + t.decode_time
    thr = _div(out_tokens, e2e, math.inf)
    energy = chips * (t.energy + idle_w * (e2e - t.busy / pp))
    with np.errstate(divide="ignore", invalid="ignore"):
        res = {
            "tpot_s": t.decode_time / steps if steps > 0 else 0.0 * e2e,
            "e2e_s": e2e,
            "output_throughput_tok_s": thr,
            "per_chip_output_throughput_tok_s": thr / chips,
            "joules_per_output_token": energy / out_tokens,
            "mfu": utilization(t.flops * chips, e2e, chips, peak_flops),
            "mbu": utilization(t.decode_bytes * chips, t.decode_time, chips, home_bandwidth),
            "usd_per_mtok_output": usd_per_mtok(usd_per_s, e2e, out_tokens),
            "usd_per_mtok_input": usd_per_mtok(usd_per_s, t.ttft, batch * input_len),
        }
    return res


def usd_per_mtok(usd_per_s, seconds, tokens):
    """USD per million tokens: what ``seconds`` of the hardware cost, over the ``tokens`` made in them
    (a rate: usd_per_mtok(usd_per_s, 1.0, tokens per second)). None when the price is unknown."""
    if usd_per_s is None:
        return None
    return usd_per_s * seconds / tokens * 1e6


def utilization(amount, seconds, chips, peak):
    """MFU or MBU: work done by all chips (FLOPs, or bytes at the weights/KV level) over what ``chips``
    chips do at ``peak`` (FLOP/s or B/s) in ``seconds``; 0 when no time passed."""
    return _div(amount, seconds * chips * peak, 0.0)
