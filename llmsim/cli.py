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


class _Version(argparse.Action):
    """--version, reading the version only when asked (package metadata is slow to import)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from llmsim import __version__

        parser.exit(message=f"llmsim {__version__}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command`` (a subcommand name) only that subcommand's module is imported,
    so a command starts without the heavy libraries the others need."""

    parser = argparse.ArgumentParser(
        prog="llmsim",
        description="Predict latency, throughput, energy and cost of LLM inference on real and hypothetical hardware.",
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in ([command] if command in COMMAND_MODULES else COMMAND_MODULES):
        try:
            mod = importlib.import_module(f"llmsim.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"llmsim.commands.{name}":
                continue
            raise
        mod.register(sub)
    from llmsim.commands._common import bound_numeric_flags

    bound_numeric_flags(parser)
    return parser


def _command_of(argv: list) -> str | None:
    """The subcommand named in ``argv`` (its first word not starting with '-'), if any."""
    for a in argv:
        if not a.startswith("-"):
            return a
        if a in ("-h", "--help", "--version"):
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
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
    except OSError as e:  # a place the user named cannot be read or written (--out /dev/null, a read-only folder)
        where = e.filename or "?"
        print(f"error: {where}: {e.strerror or e} (check the path given to --out or the input files)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
