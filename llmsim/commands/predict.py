"""`llmsim predict`: a static batch on a chip or system: TTFT, TPOT, throughput, cost, energy."""

from __future__ import annotations

import math
import sys

from hwmodels.errors import InfeasibleError, Problem, SpecError
from hwmodels.units import UnitError, parse_quantity
from llmsim.commands._common import add_price_option, add_set_option, calibration_text, print_json
from llmsim.commands._config import add_config_arguments, config_values
from sim.config import COST_FLAGS, PredictConfig, ServingConfig
from sim.cost import CostOptions
from workloads.quant import Sparsity
from workloads.techniques import SpecConfig


def add_workload_options(p, batch_required=True, hw=True) -> None:
    """--hw (unless ``hw`` is False: the caller adds its own), --model, parallelism, quantization,
    --set and the software options."""
    if hw:
        add_config_arguments(p, PredictConfig, "hw")
    add_config_arguments(p, PredictConfig, "model")
    add_config_arguments(p, PredictConfig, "parallel")
    add_set_option(p)
    add_price_option(p)
    add_cost_options(p)


def add_cost_options(p) -> None:
    """The software options: the CostOptions flags (``sim.config.COST_FLAGS``) and --attention-kernel."""
    g = p.add_argument_group("software options")
    for i, (flag, (_, _, help_)) in enumerate(COST_FLAGS.items()):
        if i == 3:
            add_config_arguments(g, ServingConfig, "software")
        g.add_argument(flag, action="store_true", help=help_)
    add_stack_option(g)


def add_stack_option(g) -> None:
    from hwmodels.stack import DEFAULT_STACK, list_stacks

    g.add_argument("--stack", default=DEFAULT_STACK, metavar="NAME|FILE",
                   help=f"serving-stack profile: {', '.join(list_stacks())} or a YAML file (default {DEFAULT_STACK}; "
                        "ideal = kernels only, no runtime cost outside them; docs/stacks.md)")


def cost_options(args):
    """The CostOptions the software-option flags set (a flag a parser lacks leaves its default)."""
    kw = {}
    for flag, (name, value, _) in COST_FLAGS.items():
        if getattr(args, flag[2:].replace("-", "_"), False):
            kw[name] = value
    return CostOptions(**kw)


def add_technique_options(p) -> None:
    """Speculative decoding, 2:4 sparsity, offload and KV eviction (docs/optimize.md)."""
    g = p.add_argument_group("techniques (docs/optimize.md)")
    g.add_argument("--spec-draft", metavar="MODEL", help="speculative decoding with this draft model")
    g.add_argument("--spec-ngram", action="store_true",
                   help="speculative decoding with an n-gram (prompt-lookup) proposer: no draft model, a fixed "
                        "cost per round (--spec-step-cost)")
    g.add_argument("--spec-k", type=int, default=4, metavar="K", help="tokens proposed per step (default 4)")
    g.add_argument("--spec-acceptance", default="0.7", metavar="A",
                   help="acceptance rate in [0, 1], or K comma-separated per-position rates (default 0.7)")
    g.add_argument("--spec-step-cost", type=float, metavar="SECONDS",
                   help="fixed proposer cost per round (default 0 with a draft, 100e-6 s for --spec-ngram)")
    g.add_argument("--spec-draft-quant", metavar="SCHEME", help="the draft model's quantization (default: the target's)")
    g.add_argument("--sparse", nargs="?", const="attn,mlp,moe", metavar="LAYERS",
                   help="2:4 structured sparsity of these linear layers (attn,mlp,moe,lm_head; default "
                        "attn,mlp,moe), stored compressed, at the chip's sparse peak")
    g.add_argument("--sparse-uncompressed", action="store_true", help="pruned weights stored dense (zeros kept)")
    g.add_argument("--offload", choices=["kv", "weights", "both"],
                   help="what may spill to host memory when it does not fit (streams over the host link)")
    g.add_argument("--offload-bandwidth", metavar="BW", help='far-tier link, e.g. "64 GB/s" (default: host_link)')
    g.add_argument("--offload-capacity", metavar="BYTES", help='far-tier bytes per chip, e.g. "256 GB" (default 256 GB)')
    g.add_argument("--kv-window", type=int, metavar="W", help="keep only the last W tokens of KV cache (lossy eviction)")


def technique_kwargs(args) -> dict:
    """predict()'s technique keywords from the parsed --spec-*/--sparse/--offload/--kv-window flags."""
    from sim.techniques import Offload

    kw: dict = {}
    for flag in ("--spec-draft", "--sparse", "--offload-bandwidth", "--offload-capacity"):  # '' is not 'not given'
        v = getattr(args, flag[2:].replace("-", "_"), None)
        if v is not None and not str(v).strip():
            raise SpecError([Problem(f"empty value; give {flag} a value or leave the flag out", path=flag)])
    if getattr(args, "spec_draft", None) or getattr(args, "spec_ngram", False):
        if args.spec_draft and args.spec_ngram:
            raise SpecError([Problem("give --spec-draft or --spec-ngram, not both", path="--spec-ngram")])
        parts = [x for x in str(args.spec_acceptance).split(",") if x.strip()]
        try:
            rates = [float(x) for x in parts]
        except ValueError:
            raise SpecError([Problem(f"not a number: {args.spec_acceptance!r}", path="--spec-acceptance")]) from None
        acc = rates[0] if len(rates) == 1 else tuple(rates)
        kw["speculative"] = SpecConfig(k=args.spec_k, acceptance=acc, draft=args.spec_draft or None,
                                       draft_quant=args.spec_draft_quant, step_cost_s=args.spec_step_cost)
    if getattr(args, "sparse", None):
        kw["sparsity"] = Sparsity(layers=args.sparse, compressed=not args.sparse_uncompressed)
    if getattr(args, "offload", None):
        bw = cap = None
        try:
            if args.offload_bandwidth:
                bw = parse_quantity(args.offload_bandwidth, "bandwidth")
            if args.offload_capacity:
                cap = parse_quantity(args.offload_capacity, "bytes")
        except UnitError as e:
            raise SpecError([Problem(str(e), path="--offload-bandwidth/--offload-capacity")]) from None
        kw["offload"] = Offload(kv=args.offload in ("kv", "both"), weights=args.offload in ("weights", "both"),
                                bandwidth=bw, capacity=cap)
    if getattr(args, "kv_window", None) is not None:
        kw["kv_window"] = args.kv_window
    return kw


def register(sub) -> None:
    p = sub.add_parser("predict", help="predict a static batch: TTFT, TPOT, throughput, USD/Mtok, energy")
    add_workload_options(p)
    add_config_arguments(p, PredictConfig, "batch")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--breakdown", action="store_true", help="print the per-op-kind time breakdown")
    add_config_arguments(p, PredictConfig, "intervals")
    add_technique_options(p)
    p.set_defaults(func=cmd_predict)


def with_basis(pred, hw, options) -> dict:
    """pred.to_dict() plus interval_basis: the calibration state, family and widening its intervals use."""
    from sim.uncertainty import describe

    d = pred.to_dict()
    if pred.intervals is not None:
        d["interval_basis"] = describe(hw, options)
    return d


def _ms(s):
    from hwmodels.format import fmt_time

    return fmt_time(s, digits=4)


def predict_config(args, **changes) -> PredictConfig:
    """The PredictConfig the predict-style flags describe (``llmsim predict``, ``compare``, ``report
    predict``): the fields with a flag, --set, the software options and the techniques; ``changes``
    replace fields."""
    return PredictConfig(**{**config_values(PredictConfig, args), "overrides": args.overrides or None,
                            "options": cost_options(args), "attention_kernel": args.attention_kernel,
                            "stack": getattr(args, "stack", None), **technique_kwargs(args), **changes})


def cmd_predict(args) -> int:
    from sim.predict import predict

    cfg = predict_config(args, check_memory=True)
    try:
        pred = predict(config=cfg)
    except InfeasibleError as e:
        if args.json:
            print_json({"fits": False, "reason": str(e), **{k: v for k, v in e.numbers.items()}})
        print(f"infeasible: {e}", file=sys.stderr)
        return 3
    for w in pred.warnings:
        print(f"warning: {w}", file=sys.stderr)
    d = with_basis(pred, args.hw, cfg.options)
    if args.json:
        print_json(d)
        return 0
    print_prediction(pred, breakdown=args.breakdown, intervals=d)
    return 0


def _rng(iv: dict | None, key: str, fmt) -> str:
    """' [lo - hi]' for a metric's interval (empty without one)."""
    if not iv or key not in (iv.get("intervals") or {}):
        return ""
    lo, hi = iv["intervals"][key]
    return f" [{fmt(lo)} - {fmt(hi)}]"


def print_prediction(p, breakdown=False, intervals: dict | None = None) -> None:
    for n in p.notes:
        print(f"note: {n}")
    print(f"{p.model} on {p.system} ({p.chips} chip{'s' if p.chips > 1 else ''}, tp={p.tp} pp={p.pp} ep={p.ep}, "
          f"{p.quant})")
    print(f"batch {p.batch} x ({p.input_len} in, {p.output_len} out)")
    print(f"serving stack {getattr(p, 'stack', 'ideal')}")
    if getattr(p, "speculative", None):
        print(p.speculative)
    if getattr(p, "sparsity", None):
        print(f"2:4 sparsity: {p.sparsity}")
    if getattr(p, "kv_window", None):
        print(f"KV eviction: last {p.kv_window} tokens kept (lossy)")
    from hwmodels.format import fmt_bytes, fmt_energy, fmt_pct, fmt_rate, fmt_usd
    from hwmodels.format import placement_text

    iv = intervals
    rows = [
        ("TTFT", _ms(p.ttft_s) + _rng(iv, "ttft_s", _ms)),
        ("TPOT (mean decode step)", _ms(p.tpot_s) + _rng(iv, "tpot_s", _ms)),
        ("end-to-end", _ms(p.e2e_s) + _rng(iv, "e2e_s", _ms)),
        ("output throughput", f"{fmt_rate(p.output_throughput_tok_s)}" + _rng(iv, "output_throughput_tok_s", fmt_rate)
         + f" ({fmt_rate(p.per_chip_output_throughput_tok_s)} per chip)"),
        ("memory per chip", f"{fmt_bytes(p.weights_bytes + p.kv_cache_bytes + p.activation_bytes)} of "
                            f"{fmt_bytes(p.memory_capacity_bytes)} (weights {fmt_bytes(p.weights_bytes)}, "
                            f"KV {fmt_bytes(p.kv_cache_bytes)}, activations {fmt_bytes(p.activation_bytes)})"),
        ("USD per million output tokens", "-" if p.usd_per_mtok_output is None else fmt_usd(p.usd_per_mtok_output)
         + _rng(iv, "usd_per_mtok_output", fmt_usd) + f" (at {fmt_usd(p.usd_per_hour, 'h')})"),
        ("price used", getattr(p, "price_source", None) or "none (give --price USD/h)"),
        ("efficiency data", calibration_text(getattr(p, "calibration", None))),
        ("energy per output token", fmt_energy(p.joules_per_output_token)
         + _rng(iv, "joules_per_output_token", fmt_energy) if math.isfinite(p.joules_per_output_token)
         else "unknown (the hardware lists no power data)"),
        ("MFU / MBU", f"{fmt_pct(p.mfu)} / {fmt_pct(p.mbu)}"),
        ("placement", "; ".join(f"{k}: {v}" for k, v in placement_text(p.placement)) or "-"),
        ("bound (share of time)", ", ".join(f"{k} {v * 100:.0f}%" for k, v in
                                            sorted(p.bound_breakdown.items(), key=lambda kv: -kv[1]))),
    ]
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    if iv and iv.get("intervals"):
        b = iv.get("interval_basis", {})
        print(f"  [ranges: {iv['interval_level']:.0%} prediction intervals from the validation record; "
              f"{b.get('calibration', '?')} chip, {b.get('family', '?')}"
              + ("" if b.get("in_validation_record", True) else f", not in the record: widened x{b.get('widening')}")
              + "; docs/uncertainty.md]")
    if breakdown:
        import pandas as pd

        from hwmodels.format import fmt_time
        from reports.tables import render_table

        df = p.by_kind()
        shown = pd.DataFrame({"op kind": [str(k) for k in df.index],
                              **{str(c): [fmt_time(v) for v in df[c]] for c in df.columns}})
        print("\n  time per step by op kind:")
        print("  " + render_table(shown, formatted=True).replace("\n", "\n  "))
