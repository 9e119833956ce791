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
