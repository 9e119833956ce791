"""The HTML report in a real headless browser: it renders, every figure decodes, every table is in
the DOM, nothing is fetched from elsewhere and no script or load error occurs.

Needs chromium (Debian: ``apt-get install -y chromium``); skipped when it is not installed.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from llmsim.cli import main

DATA = Path(__file__).parent.parent / "data"
TOY = str(DATA / "toy-chip.yaml")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0"]


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser, args, tmp_path):
    try:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                              capture_output=True, text=True, timeout=90, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not finish within 90 s")


def test_report_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    out = tmp_path / "report"
    assert main(["report", "predict", "--hw", TOY, "--model", "qwen2.5-0.5b", "--batch", "4", "--input-len", "128",
                 "--output-len", "16", "--sweep", "1,4", "--out", str(out)]) == 0
    page = (out / "report.html").resolve()
    tables = re.findall(r'data-table="([^"]+)"', page.read_text())
    r = _run(browser, ["--dump-dom", page.as_uri()], tmp_path)
    if r.returncode != 0 and not r.stdout:
        pytest.skip(f"chromium could not start here (exit {r.returncode}): {r.stderr.strip()[-300:]}")
    dom = r.stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("data-figures-loaded") == "3/3", attrs
    assert attrs.get("data-tables") == str(len(tables)) and len(tables) >= 8
    assert attrs.get("data-external-resources") == "0"
    assert attrs.get("data-errors") == "0"
    for t in tables:
        assert f'data-table="{t}"' in dom
    console = [x for x in r.stderr.splitlines() if "CONSOLE" in x]
    assert not [x for x in console if re.search(r"Uncaught|Failed|Refused|error", x, re.IGNORECASE)], console
    # and it paints: a screenshot of a non-blank page
    shot = tmp_path / "shot.png"
    r = _run(browser, ["--window-size=1200,2000", f"--screenshot={shot}", page.as_uri()], tmp_path)
    assert shot.is_file() and shot.stat().st_size > 20_000, r.stderr[-500:]
