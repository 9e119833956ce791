"""The front door: every name llmsim exports resolves, and import llmsim stays light."""

import subprocess
import sys

import llmsim


def test_every_public_name_resolves():
    for name in llmsim.__all__:
        assert getattr(llmsim, name) is not None, name


def test_import_is_light():
    code = "import sys, llmsim; print(any(m.startswith(('pandas', 'matplotlib', 'simpy')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_dir_lists_the_api():
    names = dir(llmsim)
    for n in ("predict", "simulate", "compare", "plan", "sweep", "plot_roofline", "load_chip", "__version__"):
        assert n in names, n


def test_compare_returns_a_frame_like_the_cli():
    df = llmsim.compare("llama-3.1-8b", ["h100-sxm", "h100-sxm,memory.hbm.bandwidth=6 TB/s"],
                        batch=8, input_len=256, output_len=32)
    assert list(df["label"]) == ["h100-sxm", "h100-sxm v1"] and df["fits"].all()
    # more bandwidth, a faster decode step: the variant's overrides reached the prediction
    assert df["tpot_s"].iloc[1] < df["tpot_s"].iloc[0]
    for c in ("ttft_s", "output_throughput_tok_s", "usd_per_mtok_output", "memory_used_bytes", "bound"):
        assert c in df.columns


def test_compare_keeps_what_cannot_run():
    df = llmsim.compare("llama-3.1-70b", ["h100-sxm"], batch=1, input_len=128, output_len=8)
    assert not df["fits"].iloc[0] and "reason" in df.columns


def test_running_from_the_folder_above_a_clone(tmp_path):
    """A clone named llmsim, Python started in its parent: the clone's root __init__.py loads the package."""
    from pathlib import Path

    root = Path(llmsim.__file__).resolve().parent.parent
    (tmp_path / "llmsim").symlink_to(root, target_is_directory=True)
    code = "import llmsim; print(llmsim.simulate.__name__, llmsim.__version__, 'predict' in dir(llmsim))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["simulate", llmsim.__version__, "True"]
