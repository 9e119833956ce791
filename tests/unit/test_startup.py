"""CLI start-up: a command imports only what it needs (issue: 92-97% of a predict call was start-up,
pandas alone 0.26 s of it). Speed itself is measured in benchmarks/, not here."""

import subprocess
import sys


def _modules_after(argv: list) -> set:
    code = ("import sys, io, contextlib\nfrom llmsim.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    rc = main({argv!r})\n"
            "assert rc == 0, rc\nprint(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(out.stdout.split())


def test_predict_starts_without_pandas_matplotlib_or_simpy():
    mods = _modules_after(["predict", "--hw", "h100-sxm", "--model", "llama-3.1-8b", "--batch", "2",
                           "--input-len", "64", "--output-len", "8", "--json"])
    assert not {"pandas", "matplotlib", "simpy", "pyarrow", "dask"} & mods
    assert "numpy.ma" not in mods  # the intervals' quantiles read sorted draws without np.quantile (~10 ms)
    # the draws come from a counter-based generator and the normal quantile from Acklam's formula (~13 ms)
    assert not {"numpy.random", "statistics"} & mods
    assert not any(m.startswith("llmsim.commands.") and m not in ("llmsim.commands.predict", "llmsim.commands._common",
                                                                  "llmsim.commands._config") for m in mods)


def test_help_still_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "llmsim.cli", "--help"], capture_output=True, text=True, timeout=120)
    for cmd in ("demo", "hw", "predict", "serve", "plan", "sweep", "report", "compare", "optimize"):
        assert cmd in out.stdout


def test_api_predict_without_intervals_skips_numpy_ma():
    """np.unique imports numpy.ma (~10 ms); the cost model's level lookups do without it, so a predict
    without prediction intervals (the API's default) never loads it."""
    code = ("import sys\nfrom sim.predict import predict\n"
            "predict('llama-3.1-8b', 'h100-sxm', 8, 512, 128)\n"
            "predict('llama-3.1-8b', 'hgx-h100-8', 8, 512, 128, tp=2)\n"
            "print('numpy.ma' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False"]
