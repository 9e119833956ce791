"""`llmsim serve`: simulate online or offline serving of a request stream (SimPy, iteration-level)."""

from __future__ import annotations

import math
import sys

from hwmodels.errors import Problem, SpecError
from llmsim.commands._common import Progress, add_price_option, add_set_option, calibration_text, print_json
from llmsim.commands._config import add_config_arguments, config_values, field_names
from llmsim.commands.predict import add_cost_options, cost_options
from sim.config import ServingConfig


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="simulate serving a request stream: TTFT/TPOT percentiles, goodput, USD/Mtok",
        description="Discrete-event simulation of data-parallel replicas with vLLM-style continuous "
        "batching, "
        "Sarathi chunked prefill, static batching or prefill/decode disaggregation. Every step is "
        "priced by the same cost model as `llmsim predict`.",
    )
    p.add_argument("--hw", required=True, help="chip or system: catalog name or YAML path")
    p.add_argument("--model", required=True, help="model: catalog name or config.json path")
    add_config_arguments(p.add_argument_group("replicas"), ServingConfig, "replicas")
    add_config_arguments(p.add_argument_group("scheduler"), ServingConfig, "scheduler")
    w = p.add_argument_group(
        "workload (synthetic: --rate with --num-requests, --input-len, --output-len; or --trace)"
    )
    w.add_argument("--rate", help="requests/s, or 'inf' for all at t=0 (offline: maximum throughput)")
    w.add_argument("--num-requests", type=int, help="requests to generate")
    w.add_argument("--input-len", type=int, help="prompt tokens per request")
    w.add_argument("--output-len", type=int, help="output tokens per request")
    w.add_argument(
        "--arrival",
        default="poisson",
        choices=["poisson", "gamma", "fixed"],
        help="arrival process (default poisson)",
    )
    w.add_argument(
        "--cv", type=float, default=2.0, help="gamma arrivals: coefficient of variation (default 2)"
    )
    w.add_argument(
        "--shared-prefix",
        type=int,
        default=0,
        metavar="TOKENS",
        help="every prompt starts with one of --num-prefixes shared prefixes of this many tokens",
    )
    w.add_argument(
        "--num-prefixes", type=int, default=0, help="distinct shared prefixes (with --shared-prefix)"
    )
    w.add_argument(
        "--trace", metavar="FILE", help="replay a trace: CSV path or azure-code-2023, azure-conv-2023"
    )
    w.add_argument("--trace-speedup", type=float, default=1.0, help="replay the trace this many times faster")
    w.add_argument("--limit", type=int, help="use only the first N requests of the trace")
    add_config_arguments(w, ServingConfig, "workload")
    o = p.add_argument_group("objectives and output")
    add_config_arguments(o, ServingConfig, "objectives")
    o.add_argument("--json", action="store_true", help="print the summary as JSON")
    o.add_argument("--quiet", action="store_true",
                   help="no progress on stderr (shown only when stderr is a terminal)")
    o.add_argument("--out", metavar="DIR", help="write requests.csv, timeline.csv, summary.json, trace.json")
    o.add_argument("--interval-level", type=float, default=0.8, metavar="P",
                   help="level of the prediction intervals, 0 < P < 1 (default 0.8): the run is repeated with op "
                        "times at the interval's two ends (docs/uncertainty.md)")
    o.add_argument("--no-intervals", action="store_true",
                   help="skip the two extra runs that give the prediction intervals")
    add_set_option(p)
    add_price_option(p)
    add_cost_options(p)
    p.set_defaults(func=cmd_serve)


def build_scenario(args):
    """The request stream the flags describe (a Scenario)."""
    from workloads.scenario import FixedRate, Gamma, Poisson, Scenario, arrival_process, parse_rate
    from workloads.trace import load_trace

    problems = []
    synthetic = [
        f
        for f, v in (
            ("--num-requests", args.num_requests),
            ("--input-len", args.input_len),
            ("--output-len", args.output_len),
        )
        if v is not None
    ]
    if args.trace:
        if synthetic:
            problems.append(
                Problem(
                    f"a trace brings its own lengths and count; drop {', '.join(synthetic)} "
                    f"(use --limit to take its first N requests)",
                    path="--trace",
                )
            )
        if args.shared_prefix or args.num_prefixes:
            problems.append(
                Problem("shared prefixes apply to synthetic streams only", path="--shared-prefix")
            )
        if args.limit is not None and args.limit < 1:
            problems.append(Problem(f"must be >= 1, got {args.limit}", path="--limit"))
        if problems:
            raise SpecError(problems)
        tr = load_trace(args.trace, limit=args.limit)
        if args.rate is not None:
            if args.trace_speedup != 1.0:
                raise SpecError(Problem("give --rate or --trace-speedup, not both", path="--rate"))
            rate = parse_rate(args.rate)
            if math.isinf(rate):
                return Scenario(
                    arrival_process(rate),
                    _replay(tr.input_tokens),
                    _replay(tr.output_tokens),
                    num_requests=len(tr),
                    name=tr.name,
                )
            return tr.scenario(rate_rps=rate)
        if not args.trace_speedup > 0:
            raise SpecError(Problem(f"must be > 0, got {args.trace_speedup}", path="--trace-speedup"))
        return tr.scenario(args.trace_speedup)
    if args.limit is not None:
        problems.append(Problem("--limit applies to --trace; use --num-requests", path="--limit"))
    for flag, v in (
        ("--rate", args.rate),
        ("--num-requests", args.num_requests),
        ("--input-len", args.input_len),
        ("--output-len", args.output_len),
    ):
        if v is None:
            problems.append(Problem("required without --trace", path=flag))
    for flag, v in (
        ("--num-requests", args.num_requests),
        ("--input-len", args.input_len),
        ("--output-len", args.output_len),
    ):
        if v is not None and v < 1:
            problems.append(Problem(f"must be >= 1, got {v}", path=flag))
    rate = None
    if args.rate is not None:
        try:
            rate = parse_rate(args.rate)
        except SpecError as e:
            problems += [Problem(p.message, path="--rate") for p in e.problems]
    if args.arrival == "gamma" and not (args.cv > 0 and math.isfinite(args.cv)):
        problems.append(Problem(f"must be > 0, got {args.cv}", path="--cv"))
    if problems:
        raise SpecError(problems)
    if math.isinf(rate):
        arrivals = arrival_process(rate)
    elif args.arrival == "poisson":
        arrivals = Poisson(rate)
    elif args.arrival == "gamma":
        arrivals = Gamma(rate, args.cv)
    else:
        arrivals = FixedRate(rate)
    return Scenario(
        arrivals,
        args.input_len,
        args.output_len,
        num_requests=args.num_requests,
        shared_prefix_tokens=args.shared_prefix,
        num_prefixes=args.num_prefixes,
        name=f"{args.arrival} {args.rate} req/s",
    )


def _replay(values):
    from workloads.scenario import Replay

    return Replay(values)


def serving_config(args) -> ServingConfig:
    """The ServingConfig the ``llmsim serve`` flags describe (shared with ``llmsim report serve``).

    Settings left out (None) come from the --stack (ServingConfig.with_stack): the scheduler, its
    budgets and sarathi's chunk (--max-num-batched-tokens when given)."""
    kw = config_values(ServingConfig, args)
    kw.update(slo_seconds(args))
    return ServingConfig(**kw, options=cost_options(args), overrides=args.overrides or None, stack=args.stack)


def simulate_kwargs(args) -> dict:
    """Keyword arguments of ``sim.serving.simulate`` from the ``llmsim serve`` flags: the fields of
    :func:`serving_config`."""
    cfg = serving_config(args)
    return {f: getattr(cfg, f) for f in field_names(ServingConfig)}


def slo_seconds(args) -> dict:
    """--slo-ttft/--slo-tpot in seconds: bare seconds ('0.5') or with a unit ('500ms')."""
    from hwmodels.units import UnitError, parse_seconds

    out, problems = {}, []
    for flag, name, v in (("--slo-ttft", "slo_ttft_s", args.slo_ttft), ("--slo-tpot", "slo_tpot_s", args.slo_tpot)):
        if v is None:
            continue
        try:
            out[name] = parse_seconds(v)
        except UnitError as e:
            problems.append(Problem(str(e), path=flag))
    if problems:
        raise SpecError(problems)
    return out


def cmd_serve(args) -> int:
    from sim.serving import simulate

    problems = []
    try:
        cfg = serving_config(args)  # SLO flags parsed here
        problems += cfg.problems()  # reported together with the stream's
    except SpecError as e:
        problems += e.problems
    try:
        scenario = build_scenario(args)
    except SpecError as e:
        raise SpecError(problems + e.problems) from None
    if problems:
        raise SpecError(problems)
    from sim.uncertainty import check_level

    level = None if args.no_intervals else check_level(args.interval_level)
    progress = Progress(args.quiet)
    total = getattr(scenario, "num_requests", None)
    rate = getattr(getattr(scenario, "arrivals", None), "rate_rps", None)
    progress.say(f"serve: {args.model} on {args.hw}, {cfg.replicas if cfg.scheduler != 'disagg' else 'disagg'} "
                 f"replica(s), offered {'-' if rate is None else f'{rate:,.4g}'} req/s"
                 + (f", {total:,} requests" if total else ""))
    # without --out no per-request row is needed: memory stays flat in the number of requests
    res = simulate(scenario, args.hw, args.model, cfg, out_dir=args.out, progress=progress.sim_callback(total),
                   keep_requests=args.out is not None)
    progress.clear()
    summary = dict(res.summary)  # its warnings hold the model config's (an unknown activation name) and the run's
    if level is not None:
        from sim.serving.intervals import serving_intervals

        summary["interval_level"] = level
        summary["intervals"] = serving_intervals(res.summary, scenario, args.hw, args.model, level, cfg)
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary))
        if args.out:
            print(f"wrote {args.out}/requests.csv, timeline.csv, summary.json, trace.json")
    return run_outcome(res)


def run_outcome(res) -> int:
    """The end of a serving run, as `serve` and `report serve` say it: its warnings on stderr, and exit 3 with the
    reason when every request was rejected (a run that served nothing never exits 0)."""
    s = res.summary
    for w in s["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    if s["requests_rejected"] and not s["requests_completed"]:
        print(f"infeasible: no request could be served under {s['scheduler']} scheduling "
              f"(max_num_batched_tokens {res.config['scheduler']['max_num_batched_tokens']}, max model length "
              f"{res.config['max_model_len']}); see the rejection reasons above", file=sys.stderr)
        return 3
    return 0


# --------------------------------------------------------------------------------------------
# the 80-column text summary


def _t(x) -> str:
    """A latency for the summary (hwmodels.format.fmt_time: '87.2 ms', '1.23 s'; '-' when missing)."""
    from hwmodels.format import fmt_time

    return fmt_time(x)


def _n(x, fmt=",.0f"):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, fmt)


def format_summary(s: dict) -> str:
    """The summary as text that fits 80 columns."""
    lines = []
    for n in s.get("notes") or []:
        lines.append(f"note: {n}")
    reps = s["replicas"]
    pool = (
        f"{s['prefill_replicas']} prefill + {s['decode_replicas']} decode replicas"
        if s["scheduler"] == "disagg"
        else f"{reps} replica{'s' if reps > 1 else ''}"
    )
    head = f"{s['model']} on {s['system']}, {s['scheduler']} scheduler, {s.get('stack', 'ideal')} stack"
    setup = (
        f"{pool}, tp={s['tp']} pp={s['pp']}{' ep=' + str(s['ep']) if s['ep'] > 1 else ''}, {s['quant']}, "
        f"{s['chips']} chip{'s' if s['chips'] > 1 else ''}"
    )
    if len(head) + len(setup) + 2 <= 80:
        lines.append(f"{head}: {setup}")
    else:
        lines += [head, f"replicas    {setup}"]
    if s.get("calibration"):  # what the chip's efficiency figures rest on ('none': datasheet peaks, 100 %)
        lines.append(f"efficiency  {calibration_text(s['calibration'])}")
    lines.append(
        f"requests    {s['requests_completed']:,} completed, {s['requests_rejected']:,} rejected"
        + (f", {s['requests_unfinished']:,} unfinished" if s.get("requests_unfinished") else "")
        + f" in {_n(s['duration_s'], ',.1f')} s simulated ({s['sim_wall_s']:.1f} s wall)"
    )
    for reason, k in (s.get("rejection_reasons") or {}).items():
        lines.append(f"  rejected  {k:,} {reason}"[:80])
    lines.append(
        f"throughput  {_n(s['request_throughput_rps'], ',.2f')} req/s, "
        f"{_n(s['output_throughput_tok_s'])} output tok/s "
        f"({_n(s['output_throughput_per_chip_tok_s'])} per chip), "
        f"{_n(s['total_token_throughput_tok_s'])} in+out"
    )
    lines.append(f"{'':14}{'mean':>12}{'p50':>12}{'p90':>12}{'p99':>12}")
    from hwmodels.format import fmt_energy, fmt_pct, fmt_usd

    for label, key in (("TTFT", "ttft"), ("TPOT", "tpot"), ("ITL", "itl"), ("E2E", "e2e"), ("queue", "queue")):
        vals = [s.get(f"{key}_{q}_s") for q in ("mean", "p50", "p90", "p99")]
        lines.append(f"{label:<14}" + "".join(f"{_t(v):>12}" for v in vals))
    slo = []
    if s.get("slo_ttft_s"):
        slo.append(f"TTFT <= {_t(s['slo_ttft_s'])}")
    if s.get("slo_tpot_s"):
        slo.append(f"TPOT <= {_t(s['slo_tpot_s'])}")
    lines.append(
        f"goodput     {_n(s['goodput_rps'], ',.2f')} req/s, SLO attainment {fmt_pct(s.get('slo_attainment'))}"
        + (f" ({', '.join(slo)})" if slo else " (no SLO given)")
    )
    lines.append(
        f"KV cache    mean {fmt_pct(s['kv_utilization_mean'])}, "
        f"max {fmt_pct(s['kv_utilization_max'])} of "
        f"{s['kv_capacity_tokens_per_replica']:,} tokens per replica; {s['preemptions']:,} preemptions"
    )
    lines.append(
        f"batch       mean {s['batch_size_mean']:.1f}, max {s['batch_size_max']}; "
        f"busy {fmt_pct(s['busy_fraction'])}; MFU {fmt_pct(s['mfu'])}, MBU {fmt_pct(s['mbu'])}"
    )

    iv = s.get("intervals") or {}
    if iv:
        def rng(key, f):
            return f"{f(iv[key][0])} to {f(iv[key][1])}" if key in iv else "-"

        lines.append(
            f"{s['interval_level']:.0%} range{'':3}output {rng('output_throughput_tok_s', _n)} tok/s, "
            f"TTFT p50 {rng('ttft_p50_s', _t)}"
        )
        tail = f"{'':12}TPOT p50 {rng('tpot_p50_s', _t)}, E2E p50 {rng('e2e_p50_s', _t)}"
        ref = "(docs/uncertainty.md)"
        lines += [f"{tail} {ref}"] if len(tail) + len(ref) < 80 else [tail, f"{'':12}{ref}"]
    usd = s.get("usd_per_mtok_output")
    lines.append(
        "cost        "
        + ("-" if usd is None else f"{fmt_usd(usd)} per million output tokens ({fmt_usd(s['usd_per_hour'], 'h')})")
        + f"; {fmt_energy(s['energy_j_per_output_token'])} per output token"
    )
    if s.get("kv_transfers"):
        lines.append(
            f"KV moves    {s['kv_transfers']:,} prefill->decode transfers, "
            f"{_t(s['kv_transfer_s_total'] / s['kv_transfers'])} each on average"
        )
    lines.append(
        f"simulator   {s['steps']:,} steps, {_n(s['steps_per_s'])} steps/s, "
        f"{fmt_pct(s['memo_hit_rate'] or 0)} priced from the step memo"
    )
    return "\n".join(line[:80] for line in lines)


def demo_serving(model: str = "llama-3.1-8b", requests: int = 1000) -> None:
    """`llmsim demo`'s serving section: the first ``requests`` Azure conversation requests on one
    H100 (continuous batching), printed as the 80-column summary."""
    from hwmodels.errors import InfeasibleError
    from sim.serving import simulate
    from workloads.trace import load_trace

    try:
        res = simulate(
            load_trace("azure-conv-2023", limit=requests), "h100-sxm", model, slo_ttft_s=1.0, slo_tpot_s=0.05
        )
    except (InfeasibleError, SpecError) as e:
        print(f"{model} cannot be served on one h100-sxm: {e}")
        return
    print(format_summary(res.summary))
