"""`llmsim demo`: llmsim's main job on the embedded defaults, end to end, in a few seconds."""

from __future__ import annotations

import time


def register(sub) -> None:
    p = sub.add_parser("demo", help="run llmsim's main job on the embedded defaults")
    p.add_argument("--model", default="llama-3.1-8b", metavar="MODEL",
                   help="catalog model (llmsim model list) or config.json path to run the demo with "
                        "(default llama-3.1-8b)")
    p.set_defaults(func=cmd_demo)


def _section(title):
    print(f"\n== {title} " + "=" * max(0, 76 - len(title)))


def cmd_demo(args) -> int:
    from llmsim.commands.hw import cmd_list
    from llmsim.commands.predict import print_prediction
    from sim.predict import predict

    t0 = time.perf_counter()
    _section("hardware catalog (llmsim hw list)")
    cmd_list(type("A", (), {"json": False})())

    _section(f"{args.model} on one H100 SXM: batch 32, 1024 in / 256 out (llmsim predict)")
    print_prediction(predict(args.model, "h100-sxm", 32, 1024, 256), breakdown=True)

    _section(f"{args.model}, batch 32, 1024 in / 256 out, on several chips")
    from reports.tables import render_table

    rows = []
    for hw in ("a100-sxm", "h100-sxm", "h200", "b200", "mi300x", "l40s", "hypo-hbm-infer"):
        try:
            p = predict(args.model, hw, 32, 1024, 256)
        except Exception as e:  # a chip that cannot run it shows why
            rows.append({"hardware": hw, "ttft_s": str(e)[:56]})
            continue
        rows.append({"hardware": hw, "ttft_s": p.ttft_s, "tpot_s": p.tpot_s,
                     "output_throughput_tok_s": p.output_throughput_tok_s,
                     "usd_per_mtok_output": p.usd_per_mtok_output, "joules_per_output_token": p.joules_per_output_token})
    print(render_table(rows, headers={"ttft_s": "TTFT", "tpot_s": "TPOT", "output_throughput_tok_s": "throughput",
                                      "usd_per_mtok_output": "USD/M out tok", "joules_per_output_token": "J/out tok"}))

    try:
        from sim.serving import simulate  # noqa: F401
        from llmsim.commands.serve import demo_serving
    except ImportError:
        demo_serving = None
    if demo_serving is not None:
        _section("serving 1,000 Azure conversation requests on one H100 (llmsim serve)")
        demo_serving(args.model)
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s. Next: `llmsim --help`, README.md, notebooks/.")
    return 0
