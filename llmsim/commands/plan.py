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

import sys

from llmsim.commands._common import add_price_option, add_set_option, print_json


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
    p.add_argument("--scheduler", action="append", metavar="NAME[:MAX_SEQS]",
                   help="scheduler setting to try (repeatable; vllm, sarathi, static; default vllm:256)")
    p.add_argument("--quant", default="bf16", help="quantization scheme (default bf16)")
    p.add_argument("--budget", type=float, metavar="USD_PER_H", help="spend at most this many USD per hour")
    p.add_argument("--requests", type=int, default=300, metavar="N",
                   help="requests simulated per probe (default 300; more = steadier p99, slower)")
    p.add_argument("--cv", type=float, default=1.0, help="inter-arrival coefficient of variation (1 = Poisson)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated arrivals and lengths (default 0)")
    p.add_argument("--top", type=int, default=3, help="configurations to report (default 3)")
    p.add_argument("--api-price-in", type=float, metavar="USD", help="API price per million input tokens")
    p.add_argument("--api-price-out", type=float, metavar="USD", help="API price per million output tokens")
    p.add_argument("--cost", choices=["auto", "cloud", "purchase"], default="auto",
                   help="price hardware by cloud rate or by purchase + power (default: cloud where listed)")
    add_set_option(p)
    add_price_option(p)
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.add_argument("--quiet", action="store_true", help="do not report probes on stderr")
    p.set_defaults(func=cmd_plan)


def _time(text: str, flag: str) -> float:
    from hwmodels.errors import Problem, SpecError
    from hwmodels.units import UnitError, parse_quantity

    text = str(text).strip()
    try:  # a bare number is seconds, as for `llmsim serve --slo-ttft S`
        v = float(text)
    except ValueError:
        v = None
    if v is not None:
        if not v > 0 or v != v or v == float("inf"):
            raise SpecError([Problem(f"must be a positive time in seconds (or with a unit, e.g. 50ms); got {text!r}",
                                     path=flag)])
        return v
    try:
        v = parse_quantity(text.replace(" ", "") if text[-1:].isalpha() else text, "time")
    except UnitError as e:
        raise SpecError([Problem(f"{e} (write e.g. '1 s' or '50 ms')", path=flag)]) from None
    return v


def _t(s) -> str:
    if s is None or s != s:  # noqa: PLR0124  (NaN)
        return "-"
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.2f} s"


def cmd_plan(args) -> int:
    from hwmodels.errors import InfeasibleError, Problem, SpecError
    from sim.plan import DEFAULT_HARDWARE, PlanRequest, plan
    from sim.tco import TcoAssumptions
    from workloads.scenario import parse_rate

    scheds = []
    for s in args.scheduler or ["vllm:256"]:
        name, _, n = s.partition(":")
        if name not in ("vllm", "sarathi", "static"):
            raise SpecError([Problem(f"unknown scheduler '{name}'; known: vllm, sarathi, static", path="--scheduler")])
        try:
            scheds.append((name, int(n) if n else 256))
        except ValueError:
            raise SpecError([Problem(f"expected NAME:MAX_SEQS, e.g. vllm:128; got '{s}'", path="--scheduler")]) from None
    req = PlanRequest(model=args.model, rate_rps=parse_rate(args.rate), slo_ttft_p99_s=_time(args.slo_ttft_p99, "--slo-ttft-p99"),
                      slo_tpot_p99_s=_time(args.slo_tpot_p99, "--slo-tpot-p99"), input_len=args.input_len,
                      output_len=args.output_len, trace=args.trace, hardware=tuple(args.hw or DEFAULT_HARDWARE),
                      tps=tuple(args.tp) if args.tp else None, schedulers=tuple(scheds), quant=args.quant,
                      budget_usd_per_hour=args.budget, num_requests=args.requests, cv=args.cv, seed=args.seed,
                      top=args.top, api_price_in=args.api_price_in, api_price_out=args.api_price_out,
                      cost=TcoAssumptions(source=args.cost), overrides=tuple(args.overrides or ()))
    say = None if (args.quiet or args.json) else (lambda m: print(f"  probe {m}", file=sys.stderr))
    res = plan(req, progress=say)
    if args.json:
        print_json(res.to_dict())
        return 0 if res.best else 3
    print_plan(res)
    if not res.best:
        c = res.closest
        why = "nothing meets the SLOs" + (" within the budget" if req.budget_usd_per_hour else "")
        raise InfeasibleError(why + ("" if c is None else f"; closest: {c.label}: {c.reason}"))
    return 0


def print_plan(res) -> None:
    r = res.request
    print(f"plan: {r.model} at {r.rate_rps:g} req/s ({res.input_len_mean:.0f} in, {res.output_len_mean:.0f} out tokens"
          + (f", trace {r.trace}" if r.trace else "") + f"); SLOs p99 TTFT <= {_t(r.slo_ttft_p99_s)}, "
          f"p99 TPOT <= {_t(r.slo_tpot_p99_s)}" + (f"; budget {r.budget_usd_per_hour:g} USD/h" if r.budget_usd_per_hour else ""))
    n = len(res.candidates)
    print(f"searched {n} configurations ({len({c.hardware for c in res.candidates})} hardware x tp "
          f"{sorted({c.tp for c in res.candidates})} x {len(r.schedulers)} scheduler setting(s)) with "
          f"{res.probes} simulations of {r.num_requests} requests each in {res.wall_s:.1f} s")
    for note in res.notes:
        print(f"  - {note}")
    if res.best:
        print(f"\ncheapest {len(res.best)} configuration(s) meeting the SLOs:")
        hdr = (f"  {'#':>2}  {'hardware':<12}{'tp':>3}  {'scheduler':<12}{'req/s/replica':>14}{'replicas':>9}"
               f"{'chips':>6}{'USD/h':>9}{'USD/Mtok':>9}{'util':>6}{'headroom':>9}{'p99 TTFT':>10}{'p99 TPOT':>10}")
        print(hdr)
        for i, c in enumerate(res.best, 1):
            print(f"  {i:>2}  {c.name[:12]:<12}{c.tp:>3}  {c.scheduler + ':' + str(c.max_num_seqs):<12}"
                  f"{c.sustained_rps:>14.3g}{c.replicas:>9}{c.replicas * c.chips_per_replica:>6}{c.usd_per_hour:>9.2f}"
                  f"{c.usd_per_mtok_output:>9.3f}{c.utilization:>6.0%}{c.headroom:>9.0%}{_t(c.ttft_p99_s):>10}"
                  f"{_t(c.tpot_p99_s):>10}")
        print("  (USD/Mtok: per million output tokens at the target traffic; util = traffic / capacity of the "
              "replicas; p99s at the sustained rate of one replica; prices: "
              + ", ".join(sorted({f'{c.system} {c.cost_source}' for c in res.best})) + ")")
        for ps in sorted({c.price_source for c in res.best if getattr(c, "price_source", None)}):
            print(f"  price used: {ps}")
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
        print("\nwhy the others were not chosen:")
        for c in others:
            if c.status == "ok":
                why = (f"meets the SLOs but costs more: {c.replicas} replica(s), {c.usd_per_hour:.2f} USD/h "
                       f"({c.sustained_rps:.3g} req/s each)")
            else:
                why = c.reason
            print(f"  {c.label}: {why}")
    if not res.best and res.closest is not None:
        print(f"\nclosest: {res.closest.label}: {res.closest.reason}")
