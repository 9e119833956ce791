"""The ``llmsim`` command line.

Each subcommand lives in its own module under ``llmsim/commands/`` and exposes
``register(subparsers)``; the module adds its parser(s) and sets ``func`` to a handler that takes
the parsed arguments and returns an exit code. Errors are printed without a traceback:
exit 2 for bad input (SpecError), 3 for a valid input that cannot run (InfeasibleError).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hwmodels.errors import InfeasibleError, SpecError

# Order is the order shown in --help. A module that is not present yet is skipped.
COMMAND_MODULES = [
    "demo", "hw", "model", "predict", "ops", "serve", "measure", "validate", "calibrate",
    "sweep", "plan", "report", "compare", "optimize",
]


def build_parser() -> argparse.ArgumentParser:
    from llmsim import __version__

    parser = argparse.ArgumentParser(
        prog="llmsim",
        description="Predict latency, throughput, energy and cost of LLM inference on real and hypothetical hardware.",
    )
    parser.add_argument("--version", action="version", version=f"llmsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"llmsim.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"llmsim.commands.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        rc = args.func(args)
    except SpecError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        return 2
    except InfeasibleError as e:
        print(f"infeasible: {e}", file=sys.stderr)
        return 3
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
