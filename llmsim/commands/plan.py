"""`llmsim plan`: the cheapest configurations that serve a traffic within its latency SLOs.

    llmsim plan --model llama-3.1-8b --rate 10 --input-len 1024 --output-len 256 \\
        --slo-ttft-p99 1s --slo-tpot-p99 50ms [--hw h100-sxm --hw h200] [--budget 60] \\
        [--api-price-in 0.2 --api-price-out 0.6]

Searches hardware x tensor parallelism x scheduler settings with the serving simulator (a search
on the rate one replica sustains, then the replicas needed; sim/plan.py) and prints the cheapest
few with USD/h, USD per million output tokens, utilization and headroom, why the others were not
chosen, and (with API prices) the cost of the same traffic through an API.
"""

from __future__ import annotations


from llmsim.commands._common import Progress, add_price_option, add_set_option, calibration_text, print_json, say_warnings
from llmsim.commands._config import add_config_arguments, config_values
from llmsim.commands.predict import add_cost_options, cost_options
from sim.config import ServingConfig

# settings plan compares (repeatable flags of its own) or sizes itself
_COMPARED = ("tp", "pp", "ep", "quant", "replicas", "scheduler", "max_num_seqs", "prefill_replicas",
             "decode_replicas")


def register(sub) -> None:
    p = sub.add_parser("plan", help="capacity planning: cheapest hardware/parallelism/replicas meeting latency SLOs")
    p.add_argument("--model", required=True, help="model: catalog name or config.json path")
    p.add_argument("--rate", required=True, help="target traffic, requests per second (e.g. 10, '10 rps')")
    p.add_argument("--input-len", type=int, help="prompt tokens per request")
    p.add_argument("--output-len", type=int, help="output tokens per request")
    p.add_argument("--trace", help="a request trace (CSV, or azure-conv-2023 / azure-code-2023) for the lengths and "
                                   "burstiness, replayed at --rate")
    p.add_argument("--slo-ttft-p99", required=True, metavar="TIME", help="p99 time to first token: seconds (0.5) or with a unit (500ms)")
    p.add_argument("--slo-tpot-p99", required=True, metavar="TIME", help="p99 time per output token: seconds (0.05) or with a unit (50ms)")
    p.add_argument("--hw", action="append", metavar="NAME",
                   help="hardware candidate (repeatable; default: a100-sxm, h100-sxm, h200)")
    p.add_argument("--tp", action="append", type=int, metavar="N", help="tensor-parallel degree to try (repeatable; "
                                                                         "default 1, 2, 4 where they divide the model)")
    p.add_argument("--pp", action="append", type=int, metavar="N",
                   help="pipeline-parallel degree to try (repeatable; default 1)")
    p.add_argument("--ep", action="append", type=int, metavar="N",
                   help="expert-parallel degree to try (repeatable, MoE; default 1)")
    p.add_argument("--scheduler", action="append", metavar="NAME[:MAX_SEQS]",
                   help="scheduler setting to try (repeatable; vllm, sarathi, static, or disagg:MAX_SEQS:P:D for "
                        "units of P prefill + D decode replicas; default: the serving stack's own, as `serve` "
                        "runs it: for vllm, chunked prefill (sarathi) with its token budget and max_num_seqs "
                        "for the chip)")
    p.add_argument("--quant", action="append", metavar="SCHEME",
                   help="quantization scheme to try (repeatable: bf16, fp8, w4a16...; default bf16)")
    p.add_argument("--budget", type=float, metavar="USD_PER_H", help="spend at most this many USD per hour")
    p.add_argument("--limit", type=int, metavar="N", help="use only the first N requests of the trace")
    p.add_argument("--requests", type=int, default=1000, metavar="N",
                   help="requests of a probe's first round, doubled until the probe is decided (default 1000)")
    p.add_argument("--request-budget", type=int, default=16000, metavar="N",
                   help="most requests one probe simulates (default 16000)")
    p.add_argument("--p99-tolerance", type=float, default=0.10, metavar="FRACTION",
                   help="a p99 has converged when its 95%% interval is within this share of it (default 0.10)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip simulating the chosen fleet (replicas then assumed to scale linearly)")
    p.add_argument("--cv", type=float, default=1.0, help="inter-arrival coefficient of variation (1 = Poisson)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated arrivals and lengths (default 0)")
    p.add_argument("--top", type=int, default=3, help="configurations to report (default 3)")
    p.add_argument("--api-price-in", type=float, metavar="USD", help="API price per million input tokens")
    p.add_argument("--api-price-out", type=float, metavar="USD", help="API price per million output tokens")
    p.add_argument("--cost", choices=["auto", "cloud", "purchase"], default="auto",
                   help="price hardware by cloud rate or by purchase + power (default: cloud where listed)")
    p.add_argument("--purchase-price", type=float, metavar="USD", help="purchase price per chip (with --cost purchase)")
    p.add_argument("--pessimistic", type=float, metavar="LEVEL",
                   help="size the fleet so the SLOs hold at the slow end of the LEVEL prediction interval (e.g. 0.8: "
                        "op times at the 90th-percentile draw of the error model; docs/uncertainty.md); the point "
                        "plan is reported beside it")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes that search and verify candidates at once (default: the CPUs this process may use; "
                        "1: one after another in this process; as sweep --workers); the plan is the same for every N")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.add_argument("--quiet", action="store_true",
                   help="no progress on stderr (probes and verifications are reported only when stderr is a terminal)")
    add_set_option(p)
    add_price_option(p)
    add_cost_options(p)
    # the serving settings `llmsim serve` takes (sim.config.ServingConfig), but for those compared above
    g = p.add_argument_group("serving settings, as for `llmsim serve` (applied to every configuration)")
    add_config_arguments(g, ServingConfig, "replicas", skip=_COMPARED)
    add_config_arguments(g, ServingConfig, "scheduler", skip=_COMPARED)
    p.set_defaults(func=cmd_plan)


def _time(text: str, flag: str) -> float:
    from hwmodels.errors import Problem, SpecError
    from hwmodels.units import UnitError, parse_seconds

    try:
        return parse_seconds(text)
    except UnitError as e:
        raise SpecError([Problem(str(e), path=flag)]) from None


def _serving(args) -> dict:
    """The ServingConfig settings given on the command line (not the compared ones), for every probe."""
    from dataclasses import fields

    defaults = {f.name: getattr(ServingConfig(), f.name) for f in fields(ServingConfig)}
    kw = {k: v for k, v in config_values(ServingConfig, args).items()
          if k not in _COMPARED and k not in ("seed", "slo_ttft_s", "slo_tpot_s") and v is not None
          and v != defaults.get(k)}
    kw.update(options=cost_options(args), attention_kernel=args.attention_kernel, stack=args.stack)
    return kw


def _scheduler(text: str) -> tuple:
    from hwmodels.errors import Problem, SpecError

    name, *rest = text.split(":")
    if name not in ("vllm", "sarathi", "static", "disagg"):
        raise SpecError([Problem(f"unknown scheduler '{name}'; known: vllm, sarathi, static, disagg",
                                 path="--scheduler")])
    want = 3 if name == "disagg" else 1
    try:
        nums = [int(x) for x in rest]
    except ValueError:
        nums = None
    if nums is None or len(nums) > want or any(x < 1 for x in nums):
        form = "disagg:MAX_SEQS:PREFILL:DECODE, e.g. disagg:256:1:2" if name == "disagg" else "NAME:MAX_SEQS, e.g. vllm:128"
        raise SpecError([Problem(f"expected {form}; got '{text}'", path="--scheduler")])
    nums += [256, 1, 1][len(nums):want]
    return (name, *nums)


def _t(s) -> str:
    from hwmodels.format import fmt_time

    return fmt_time(s)


def cmd_plan(args) -> int:
    from hwmodels.errors import InfeasibleError
    from sim.plan import DEFAULT_HARDWARE, PlanRequest, plan
    from sim.tco import TcoAssumptions
    from workloads.scenario import parse_rate

    scheds = [_scheduler(s) for s in args.scheduler] if args.scheduler else [("stack",)]
    req = PlanRequest(model=args.model, rate_rps=parse_rate(args.rate), slo_ttft_p99_s=_time(args.slo_ttft_p99, "--slo-ttft-p99"),
                      slo_tpot_p99_s=_time(args.slo_tpot_p99, "--slo-tpot-p99"), input_len=args.input_len,
                      output_len=args.output_len, trace=args.trace, hardware=tuple(args.hw or DEFAULT_HARDWARE),
                      tps=tuple(args.tp) if args.tp else None, schedulers=tuple(scheds), quant=(args.quant or ['bf16'])[0], quants=tuple(args.quant or ['bf16']),
                      budget_usd_per_hour=args.budget, num_requests=args.requests, cv=args.cv, seed=args.seed,
                      top=args.top, api_price_in=args.api_price_in, api_price_out=args.api_price_out,
                      cost=TcoAssumptions(source=args.cost, purchase_usd_per_chip=args.purchase_price),
                      request_budget=args.request_budget, p99_tolerance=args.p99_tolerance, verify=not args.no_verify,
                      limit=args.limit, pps=tuple(args.pp or (1,)), eps=tuple(args.ep or (1,)),
                      overrides=tuple(args.overrides or ()),
                      serving=_serving(args), pessimistic=args.pessimistic, workers=args.workers)
    progress = Progress(args.quiet)
    say = (lambda m: progress.say(f"  {m}")) if progress.on else None
    progress.say(f"plan: {req.model} at {req.rate_rps:g} req/s offered"
                 + (f" (trace {req.trace})" if req.trace else f" ({req.input_len} in / {req.output_len} out tokens)")
                 + f"; SLOs p99 TTFT <= {_t(req.slo_ttft_p99_s)}, p99 TPOT <= {_t(req.slo_tpot_p99_s)}")
    res = plan(req, progress=say)
    say_warnings(res.warnings)
    if args.json:
        print_json(res.to_dict())
        return 0 if res.best else 3
    print_plan(res)
    if not res.best:
        c = res.closest
        if res.candidates and all(x.status == "no_price" for x in res.candidates):
            why = "no candidate could be priced"  # each one's reason names the price it lacks
        else:
            why = "nothing meets the SLOs" + (" within the budget" if req.budget_usd_per_hour else "")
        raise InfeasibleError(why + ("" if c is None else f"; closest: {c.label}: {c.reason}"))
    return 0


def print_plan(res) -> None:
    r = res.request
    print(f"plan: {r.model} at {r.rate_rps:g} req/s ({res.input_len_mean:.0f} in, {res.output_len_mean:.0f} out tokens"
          + (f", trace {r.trace}" + (f" (first {r.limit})" if r.limit else "") if r.trace else "")
          + f"); SLOs p99 TTFT <= {_t(r.slo_ttft_p99_s)}, p99 TPOT <= {_t(r.slo_tpot_p99_s)}"
          + (f"; budget {r.budget_usd_per_hour:g} USD/h" if r.budget_usd_per_hour else ""))
    print(f"serving stack {res.stack}")
    cs = res.candidates
    dims = [f"{len({c.hardware for c in cs})} hardware", f"tp {sorted({c.tp for c in cs})}"]
    for label, vals in (("pp", {c.pp for c in cs}), ("ep", {c.ep for c in cs}), ("quant", {c.quant for c in cs})):
        if len(vals) > 1 or vals - {1, "bf16"}:
            dims.append(f"{label} {sorted(vals, key=str)}")
    dims.append(f"{len(r.schedulers)} scheduler setting(s)")
    sims = sum(p.rounds for c in cs for p in c.probes + c.point_probes)
    print(f"compared {len(cs)} configurations ({' x '.join(dims)}) with {res.probes} probes ({sims} simulations) "
          f"in {res.wall_s:.1f} s")
    for note in res.notes:
        print(f"  - {note}")
    if res.best:
        verified = r.verify
        print(f"\ncheapest {len(res.best)} configuration(s) meeting the SLOs"
              + (" (each verified by simulating its whole fleet):" if verified else ":"))
        print(f"  {'#':>2}  {'configuration':<32}{'req/s/replica':>18}{'replicas':>9}{'chips':>6}{'USD/h':>9}"
              f"{'USD/Mtok':>9}{'util':>6}{'p99 TTFT':>10}{'p99 TPOT':>10}{'SLO met':>8}")
        for i, c in enumerate(res.best, 1):
            rate = f"{c.sustained_rps:.3g} [{c.sustained_rps_lo:.3g}, {c.sustained_rps_hi:.3g}]"
            reps = f"{c.replicas}" + (f" (+{c.replicas_grown})" if c.replicas_grown else "")
            v = c.verification
            ttft, tpot = (v.ttft_p99_s, v.tpot_p99_s) if v is not None else (c.ttft_p99_s, c.tpot_p99_s)
            att = "-" if v is None else f"{v.slo_attainment:.1%}"
            print(f"  {i:>2}  {c.short[:31]:<32}{rate:>18}{reps:>9}{c.replicas * c.chips_per_replica:>6}"
                  f"{c.usd_per_hour:>9.2f}{c.usd_per_mtok_output:>9.3f}{c.utilization:>6.0%}{_t(ttft):>10}"
                  f"{_t(tpot):>10}{att:>8}")
        print("  (req/s/replica: the sustained rate of one replica and its search bracket; USD/Mtok: per million "
              "output tokens at the target traffic; util = traffic / capacity of the replicas; p99s and SLO met: "
              + ("the verified fleet at the full rate" if verified else "one replica at its sustained rate")
              + "; prices: " + ", ".join(sorted({f'{c.system} {c.cost_source}' for c in res.best})) + ")")
        for ps in sorted({c.price_source for c in res.best if getattr(c, "price_source", None)}):
            print(f"  price used: {ps}")
        for sysname, cal in sorted({(c.system, c.calibration) for c in res.best if c.calibration}):
            print(f"  efficiency data: {sysname} {calibration_text(cal)}")  # class-default, none: not measured
        if r.pessimistic is not None:
            print(f"  sized for the slow end of the {r.pessimistic:.0%} interval; the point prediction would need:")
            for i, c in enumerate(res.best, 1):
                print(f"  {i:>2}  {c.short[:31]:<32} {c.replicas_point} replica(s) at {c.sustained_rps_point:.3g} "
                      f"req/s each (not verified) vs {c.replicas} at the slow end (its draw: e2e "
                      f"x{c.slow_end_e2e_ratio:.2f})")
        b = res.best[0]
        if b.verification is not None:
            v = b.verification
            grown = (f"; grown from {b.replicas_planned} replica(s): "
                     + "; ".join(f"{h.replicas} missed ({h.why})" for h in v.history)) if v.history else ""
            print(f"\nverified: {b.replicas} x {b.label} at {r.rate_rps:g} req/s over {v.requests} requests: p99 TTFT "
                  f"{_t(v.ttft_p99_s)}, p99 TPOT {_t(v.tpot_p99_s)}, SLO attainment {v.slo_attainment:.1%}, "
                  f"{v.throughput_rps:.3g} req/s served{grown}")
            print(f"re-run it: {b.serve_command}")
    if res.api_usd_per_hour is not None:
        api = res.api_usd_per_hour
        line = (f"\nthrough an API at {r.api_price_in:g} / {r.api_price_out:g} USD per million input / output tokens: "
                f"{api:.2f} USD/h")
        if res.best:
            b = res.best[0]
            ratio = api / b.usd_per_hour
            line += (f"; self-hosting on {b.name} tp={b.tp} x{b.replicas} costs {b.usd_per_hour:.2f} USD/h, "
                     + (f"{ratio:.2f}x cheaper than the API" if ratio >= 1 else f"{1 / ratio:.2f}x the API's cost"))
        print(line)
    others = [c for c in res.candidates if c not in res.best]
    if others:
        print("\nwhy the others lost:")
        for c in others:
            if c.status == "ok":
                why = (f"meets the SLOs but costs more: {c.replicas} replica(s), {c.usd_per_hour:.2f} USD/h "
                       f"({c.sustained_rps:.3g} req/s each" + ("" if c.verified else ", fleet not verified") + ")")
            else:
                why = c.reason
            print(f"  {c.label}: {why}")
    if not res.best and res.closest is not None:
        print(f"\nclosest: {res.closest.label}: {res.closest.reason}")
