"""`llmsim predict`: a static batch on a chip or system: TTFT, TPOT, throughput, cost, energy."""

from __future__ import annotations

import sys

from hwmodels.errors import InfeasibleError
from llmsim.commands._common import add_set_option, print_json


def add_workload_options(p, batch_required=True) -> None:
    p.add_argument("--hw", required=True, help="chip or system: catalog name or YAML path")
    p.add_argument("--model", required=True, help="model: catalog name or config.json path")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree")
    p.add_argument("--pp", type=int, default=1, help="pipeline-parallel stages")
    p.add_argument("--ep", type=int, default=1, help="expert-parallel degree (MoE)")
    p.add_argument("--quant", default="bf16", metavar="SCHEME",
                   help="bf16, fp16, fp8, w8a8, w4a16, fp4, fp8-kv (default bf16)")
    p.add_argument("--weight-dtype", help="override the scheme's weight dtype")
    p.add_argument("--act-dtype", help="override the scheme's activation dtype")
    p.add_argument("--kv-dtype", help="override the scheme's KV-cache dtype")
    add_set_option(p)
    add_cost_options(p)


def add_cost_options(p) -> None:
    g = p.add_argument_group("software options")
    g.add_argument("--fused", action="store_true", help="fuse elementwise/norm chains (intermediates on chip)")
    g.add_argument("--cuda-graphs", action="store_true", help="no per-kernel launch overhead")
    g.add_argument("--overlap-comm", action="store_true", help="overlap collectives with compute")
    g.add_argument("--attention-kernel", default="auto", choices=["auto", "flash", "naive"],
                   help="attention implementation (auto: flash prefill, paged decode)")
    g.add_argument("--no-efficiency", action="store_true", help="ignore achievable-efficiency fields (pure datasheet)")
    g.add_argument("--no-tiling", action="store_true", help="plain roofline for GEMMs (no tiles, padding, waves)")


def cost_options(args):
    from sim.cost import CostOptions

    return CostOptions(fused=args.fused, cuda_graphs=args.cuda_graphs, overlap_comm=args.overlap_comm,
                       use_efficiency=not args.no_efficiency, tiling=not args.no_tiling)


def register(sub) -> None:
    p = sub.add_parser("predict", help="predict a static batch: TTFT, TPOT, throughput, USD/Mtok, energy")
    add_workload_options(p)
    p.add_argument("--batch", type=int, required=True, help="requests in the batch")
    p.add_argument("--input-len", type=int, required=True, help="prompt tokens per request")
    p.add_argument("--output-len", type=int, required=True, help="output tokens per request")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--breakdown", action="store_true", help="print the per-op-kind time breakdown")
    p.set_defaults(func=cmd_predict)


def _ms(s):
    return f"{s * 1e3:.3f} ms" if s < 10 else f"{s:.2f} s"


def cmd_predict(args) -> int:
    from sim.predict import predict

    kw = dict(tp=args.tp, pp=args.pp, ep=args.ep, quant=args.quant, weight_dtype=args.weight_dtype,
              act_dtype=args.act_dtype, kv_dtype=args.kv_dtype, overrides=args.overrides,
              options=cost_options(args), attention_kernel=args.attention_kernel)
    try:
        pred = predict(args.model, args.hw, args.batch, args.input_len, args.output_len, check_memory=True, **kw)
    except InfeasibleError as e:
        if args.json:
            print_json({"fits": False, "reason": str(e), **{k: v for k, v in e.numbers.items()}})
        print(f"infeasible: {e}", file=sys.stderr)
        return 3
    if args.json:
        print_json(pred.to_dict())
        return 0
    print_prediction(pred, breakdown=args.breakdown)
    return 0


def print_prediction(p, breakdown=False) -> None:
    for n in p.notes:
        print(f"note: {n}")
    print(f"{p.model} on {p.system} ({p.chips} chip{'s' if p.chips > 1 else ''}, tp={p.tp} pp={p.pp} ep={p.ep}, "
          f"{p.quant})")
    print(f"batch {p.batch} x ({p.input_len} in, {p.output_len} out)")
    rows = [
        ("TTFT", _ms(p.ttft_s)),
        ("TPOT (mean decode step)", _ms(p.tpot_s)),
        ("end-to-end", _ms(p.e2e_s)),
        ("output throughput", f"{p.output_throughput_tok_s:,.0f} tok/s ({p.per_chip_output_throughput_tok_s:,.0f} per chip)"),
        ("memory per chip", f"{(p.weights_bytes + p.kv_cache_bytes + p.activation_bytes) / 1e9:.1f} GB of "
                            f"{p.memory_capacity_bytes / 1e9:.1f} GB (weights {p.weights_bytes / 1e9:.1f}, "
                            f"KV {p.kv_cache_bytes / 1e9:.1f})"),
        ("USD per million output tokens", "-" if p.usd_per_mtok_output is None else f"{p.usd_per_mtok_output:.3f}"
         + f" (at {p.usd_per_hour:.2f} USD/h)"),
        ("energy per output token", f"{p.joules_per_output_token:.3f} J"),
        ("MFU / MBU", f"{p.mfu * 100:.1f}% / {p.mbu * 100:.1f}%"),
        ("bound (share of time)", ", ".join(f"{k} {v * 100:.0f}%" for k, v in
                                            sorted(p.bound_breakdown.items(), key=lambda kv: -kv[1]))),
    ]
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    if breakdown:
        df = p.by_kind()
        print("\n  time per step by op kind (ms):")
        print("  " + df.mul(1e3).round(4).to_string().replace("\n", "\n  "))
