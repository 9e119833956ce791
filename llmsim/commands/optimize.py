"""`llmsim optimize`: the software-optimization ladder, greedy, on a chip and on alternatives.

From a plain baseline (fp16, unfused attention, no fusion or CUDA graphs, static batching,
contiguous KV cache) techniques are applied one at a time, each round the one that raises output
tokens per USD most; the table shows every step (TTFT, TPOT, throughput, max batch that fits, USD
per million input and output tokens, the step's speedup and the running total), the skipped
techniques with their reasons, the ladders' ends on alternative chips, and with API prices the
break-even load. docs/optimize.md has the formulas.
"""

from __future__ import annotations

import sys
import textwrap

from hwmodels.errors import InfeasibleError, Problem, SpecError
from hwmodels.format import fmt_pct, fmt_time, fmt_usd
from llmsim.commands._common import add_price_option, add_set_option, calibration_text, print_json, say_warnings
from workloads.model import model_warnings
from workloads import load_model
from workloads.techniques import SpecConfig, default_draft
from workloads.trace import load_trace

WIDTH = 80


def register(sub) -> None:
    p = sub.add_parser("optimize", help="the optimization ladder: techniques applied greedily, speedups, break-even")
    p.add_argument("--hw", required=True, help="chip or system: catalog name or YAML path")
    p.add_argument("--model", required=True, help="model: catalog name or config.json path")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (default 1)")
    p.add_argument("--batch", type=int, help="requests (with --trace: default 64)")
    p.add_argument("--input-len", type=int, help="prompt tokens per request")
    p.add_argument("--output-len", type=int, help="output tokens per request")
    p.add_argument("--trace", metavar="FILE", help="a trace (CSV or built-in name): its mean lengths, and "
                   "their spread for static-batching padding")
    p.add_argument("--max-context", type=int, metavar="TOKENS",
                   help="tokens a contiguous KV cache reserves per request (default: the model's maximum)")
    p.add_argument("--api-price-in", type=float, metavar="USD_PER_MTOK", help="API price per million input tokens")
    p.add_argument("--api-price-out", type=float, metavar="USD_PER_MTOK", help="API price per million output tokens")
    p.add_argument("--alt-hw", metavar="NAMES",
                   help="comma-separated alternative chips ('none' for none; default three of "
                        "h100-sxm, h200, a100-sxm, mi300x, l40s)")
    p.add_argument("--techniques", metavar="NAMES", help="comma-separated techniques to consider (default all)")
    p.add_argument("--exclude", metavar="NAMES", help="comma-separated techniques to leave out")
    p.add_argument("--no-lossy", action="store_true", help="leave out quantization, sparsity and KV eviction")
    p.add_argument("--spec-draft", metavar="MODEL", help="draft model of the speculative step (default: the "
                   "model's partner, e.g. llama-3.2-1b for llama-3.1-8b)")
    p.add_argument("--spec-ngram", action="store_true", help="speculative step with an n-gram proposer")
    p.add_argument("--spec-k", type=int, default=4, metavar="K", help="proposed tokens per step (default 4)")
    p.add_argument("--spec-acceptance", type=float, metavar="A",
                   help="acceptance rate (default 0.7 with a draft, 0.5 n-gram)")
    p.add_argument("--kv-window", type=int, metavar="W", help="enable the lossy KV-eviction step (last W tokens)")
    p.add_argument("--samples", type=int, default=9, help="decode contexts priced per prediction (default 9)")
    p.add_argument("--pessimistic", type=float, metavar="LEVEL",
                   help="rank techniques by throughput per USD at the slow end of the LEVEL prediction interval "
                        "(e.g. 0.8; docs/uncertainty.md) instead of at the point prediction")
    p.add_argument("--out", metavar="DIR", help="write optimize_waterfall.png/.svg and optimize.csv here")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_set_option(p)
    add_price_option(p)
    from llmsim.commands.predict import add_stack_option

    add_stack_option(p)
    p.set_defaults(func=cmd_optimize)


def _names(s: str | None, flag: str) -> list[str]:
    """The comma-separated names of a flag; given but naming nothing ('', ',') is an error, not the default."""
    names = [x.strip() for x in (s or "").split(",") if x.strip()]
    if s is not None and not names:
        raise SpecError([Problem(f"no names in {s!r}; give comma-separated names or leave the flag out", path=flag)])
    return names


def _workload(args):
    from sim.optimize import Workload

    if args.trace:
        if args.input_len or args.output_len:
            raise SpecError([Problem("give --trace or --input-len/--output-len, not both", path="--trace")])
        return Workload.from_trace(load_trace(args.trace), batch=args.batch or 64, max_context=args.max_context)
    missing = [f for f, v in (("--batch", args.batch), ("--input-len", args.input_len),
                              ("--output-len", args.output_len)) if v is None]
    if missing:
        raise SpecError([Problem(f"missing {', '.join(missing)} (or give --trace)", path="optimize")])
    return Workload(args.batch, args.input_len, args.output_len, args.max_context)


def _spec(args):
    if args.spec_draft is not None and not args.spec_draft.strip():  # '' is not 'the default draft'
        raise SpecError([Problem("empty value; give --spec-draft a model or leave the flag out", path="--spec-draft")])
    if not (args.spec_draft or args.spec_ngram or args.spec_acceptance is not None or args.spec_k != 4):
        return None
    if args.spec_draft and args.spec_ngram:
        raise SpecError([Problem("give --spec-draft or --spec-ngram, not both", path="--spec-ngram")])
    draft = args.spec_draft
    if not draft and not args.spec_ngram:
        draft = default_draft(load_model(args.model))
    acc = args.spec_acceptance if args.spec_acceptance is not None else (0.7 if draft else 0.5)
    return SpecConfig(k=args.spec_k, acceptance=acc, draft=draft or None)


def cmd_optimize(args) -> int:
    from sim.optimize import optimize, to_json

    wl = _workload(args)
    alts = None
    if args.alt_hw is not None:
        alts = [] if args.alt_hw.strip().lower() == "none" else _names(args.alt_hw, "--alt-hw")
    if (args.api_price_in is None) != (args.api_price_out is None):
        raise SpecError([Problem("give both --api-price-in and --api-price-out", path="--api-price-in")])
    try:
        res = optimize(args.model, args.hw, wl, alternatives=alts, api_price_in=args.api_price_in,
                       api_price_out=args.api_price_out, tp=args.tp, overrides=args.overrides,
                       techniques=_names(args.techniques, "--techniques") or None,
                       exclude=tuple(_names(args.exclude, "--exclude")),
                       lossy=not args.no_lossy, speculative=_spec(args), kv_window=args.kv_window,
                       samples=args.samples, stack=args.stack, pessimistic=args.pessimistic)
    except InfeasibleError as e:
        if args.json:
            print_json({"fits": False, "reason": str(e)})
        print(f"infeasible: {e}", file=sys.stderr)
        return 3
    warnings = model_warnings(args.model)  # an unknown activation name, priced by a rule
    say_warnings(warnings)
    written = []
    if args.out:
        from reports.optimize_plots import write_outputs

        written = write_outputs(res, args.out)
    if args.json:
        d = to_json(res)
        d["files"] = [str(p) for p in written]
        d["warnings"] = warnings
        print_json(d)
        return 0
    print(render(res))
    for p in written:
        print(f"wrote {p}")
    return 0


# ---------------------------------------------------------------------------------------------
# text

def _t(s: float) -> str:
    return fmt_time(s)


def _x(v: float) -> str:
    """A speedup in at most 6 characters."""
    if v >= 1000:
        return f"x{v:.0e}".replace("e+0", "e")
    return f"x{v:.0f}" if v >= 100 else (f"x{v:.1f}" if v >= 10 else f"x{v:.2f}")


def _usd(v) -> str:
    return fmt_usd(v)


def _wrap(text: str, indent: str = "  ", sub: str = "    ") -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=sub, break_on_hyphens=False)


def _header(lad) -> list[str]:
    p0 = lad.steps[0].point
    price = "no price" if p0.usd_per_hour is None else fmt_usd(p0.usd_per_hour, "h")
    chips = f"{lad.chips} chip{'s' if lad.chips > 1 else ''}"
    return [f"{lad.model} on {lad.system} ({chips}, {price}): {lad.workload.describe()}",
            f"serving stack {lad.stack}", f"efficiency data {calibration_text(lad.calibration)}"]


def render_ladder(lad) -> str:
    wl = lad.workload
    mc = wl.max_context or load_model(lad.model).max_position
    lines = _header(lad)
    lines.append(_wrap(f"baseline: {lad.steps[0].description} ({mc} tokens reserved per request)", "", ""))
    lines.append("")
    head = (f"{'#':>2} {'technique':<16} {'TTFT':>8} {'TPOT':>8} {'tok/s':>7} {'maxB':>4} {'$/Min':>8} "
            f"{'$/Mout':>8} {'step':>5} {'total':>5}")
    lines += [head, "-" * len(head)]
    for i, s in enumerate(lad.steps):
        p = s.point
        name = s.technique + ("*" if s.lossy else "")
        step = "-" if i == 0 else _x(s.speedup)
        tot = _x(s.cumulative_speedup)
        lines.append(f"{i:>2} {name[:16]:<16} {_t(p.ttft_s):>8} {_t(p.tpot_s):>8} "
                     f"{p.output_throughput_tok_s:>7,.0f} {p.max_batch:>4} {_usd(p.usd_per_mtok_input):>8} "
                     f"{_usd(p.usd_per_mtok_output):>8} {step:>5} {tot:>5}")
    lines.append("")
    if any(s.lossy for s in lad.steps):
        lines.append("* lossy: changes the model's outputs (check quality before adopting)")
    for s in lad.steps[1:]:
        if s.technique == "speculative":
            lines.append(_wrap(s.description, "", "  "))
    fin = lad.final.point
    if fin.waves > 1:
        lines.append(_wrap(f"the optimized configuration runs {fin.running_batch} requests at a time "
                           f"({fin.waves} waves); TTFT/TPOT are one wave's", "", "  "))
    if lad.skipped:
        lines.append("skipped:")
        for name, why in lad.skipped:
            lines.append(_wrap(f"{name}: {why}"))
    for n in lad.notes:
        lines.append(_wrap(f"note: {n}", "", "  "))
    return "\n".join(lines)


def render(res: dict) -> str:
    from sim.optimize import OBJECTIVE, Ladder

    lad = res["ladder"]
    out = [render_ladder(lad), "", _wrap(f"objective: {OBJECTIVE}; greedy, the best step first.", "", "")]
    lv = res.get("pessimistic")
    if lv is not None:
        fp = lad.final.point
        out.append(_wrap(f"pessimistic: ranked at the slow end of the {lv:g} prediction interval (each wave's e2e at "
                         f"its interval's high end); optimized there: {fp.output_throughput_tok_s_slow:,.0f} tok/s, "
                         f"{_usd(fp.usd_per_mtok_output_slow)}/Mtok out (point: {fp.output_throughput_tok_s:,.0f} "
                         f"tok/s)", "", "  "))
    alts = res["alternatives"]
    if alts:
        out += ["", "alternatives (each with its own greedy ladder):",
                f"  {'hardware':<13} {'base tok/s':>10} {'opt tok/s':>10} {'$/Mout':>8} {'total':>7}  steps"]
        for a in [lad, *alts]:
            if not isinstance(a, Ladder):
                out.append(_wrap(a))
                continue
            fp = a.final.point
            out.append(f"  {a.hardware[:13]:<13} {a.steps[0].point.output_throughput_tok_s:>10,.0f} "
                       f"{fp.output_throughput_tok_s:>10,.0f} {_usd(fp.usd_per_mtok_output):>8} "
                       f"{_x(a.total_speedup):>7}  {len(a.steps) - 1}")
            out.append(_wrap("order: " + ", ".join(a.order), "      ", "      "))
    be = res.get("break_even")
    if be:
        r = be["input_per_output_tokens"]
        out += ["", _wrap(f"break-even vs the API at {_usd(be['api_usd_per_mtok_input'])}/Mtok in, "
                          f"{_usd(be['api_usd_per_mtok_output'])}/Mtok out ({lad.system}, optimized):", "", "  "),
                _wrap(f"API cost of one output token with its {r:.2f} input tokens: P = ({r:.2f} x "
                      f"{be['api_usd_per_mtok_input']:g} + {be['api_usd_per_mtok_output']:g}) / 1e6 = "
                      f"{_usd(be['api_usd_per_output_token_blended'] * 1e6)} per million output tokens"),
                _wrap(f"self-hosting at {fmt_usd(be['hardware_usd_per_hour'], 'h')} is cheaper above N* = H / P = "
                      f"{be['break_even_output_tok_per_h']:,.0f} output tokens/h (with "
                      f"{be['break_even_input_tok_per_h']:,.0f} input tokens/h), i.e. "
                      f"{fmt_pct(be['break_even_utilization'])} of this configuration's capacity of "
                      f"{be['capacity_output_tok_per_h']:,.0f} output tokens/h"),
                _wrap(f"at full load: {_usd(be['self_hosted_usd_per_mtok_output_full_load'])} per million output "
                      f"tokens self-hosted vs {_usd(be['api_usd_per_mtok_output_blended'])} via the API (input "
                      "included; price only, not quality)")]
        if be.get("offered_output_tok_per_h"):
            out.append(_wrap(f"the trace's load, {be['offered_output_tok_per_h']:,.0f} output tokens/h, needs "
                             f"{be['replicas_needed']} replica(s): {fmt_usd(be['self_hosted_usd_per_hour_at_load'], 'h')} "
                             f"self-hosted vs {fmt_usd(be['api_usd_per_hour_at_load'], 'h')} via the API"))
    elif res.get("break_even") is None and lad.steps[0].point.usd_per_hour is None and _asked(res):
        out.append(_wrap(f"no break-even: {lad.hardware} has no price (give one with --set price.cloud=\"X USD/h\")",
                         "", ""))
    return "\n".join(out)


def _asked(res) -> bool:
    return res.get("api_prices") is not None
