"""Self-contained HTML reports: one file with embedded figures, tables, inputs and provenance.

A :class:`Report` collects sections, paragraphs, tables (pandas frames) and matplotlib figures and
writes ``report.html`` into a folder together with every table as CSV (raw numbers, unit-suffixed
column names) and every figure as PNG and SVG. The HTML needs nothing else: figures are base64
PNGs in ``<img>`` tags (or inline SVG), styles are inline, and the only script is a small inline
check that, once the page has loaded, marks the body with ``data-figures-loaded="n/m"`` (figures
decoded / figures), ``data-tables``, ``data-external-resources`` (anything fetched: should be 0)
and ``data-errors`` (load or script errors), so a headless browser can confirm the page is whole.

Every report lists what is needed to reproduce it: the inputs (command line or arguments), the
llmsim version, the versions of Python and the libraries, the time, the git commit when run from
a checkout, and the SHA-256 of every hardware and model file used (:func:`file_hashes`,
:func:`hardware_files`).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import platform
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from reports.style import figure_png, figure_svg, save
from reports.tables import format_frame, format_value, title_of
from sim.version import llmsim_version
from workloads import load_model

__all__ = ["Report", "command_line", "environment", "file_hashes", "hardware_files", "model_files", "sha256_file"]

_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;
  color:#222;background:#fff;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:1.6em;margin:0 0 4px}
h2{font-size:1.25em;margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:1.05em;margin:20px 0 6px}
p.sub{color:#666;margin:0 0 16px}
table{border-collapse:collapse;margin:8px 0 4px;font-size:0.86em}
th,td{border:1px solid #ddd;padding:3px 8px;vertical-align:top}
th{background:#f3f5f8;text-align:left;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr:nth-child(even) td{background:#fafbfc}
figure{margin:12px 0 18px}
figure img,figure svg{max-width:100%;height:auto;border:1px solid #eee}
figcaption,.caption{color:#555;font-size:0.88em;margin-top:4px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:0.85em}
pre{background:#f6f8fa;padding:8px 10px;overflow-x:auto;border-radius:4px}
.note{background:#fff8e1;border-left:4px solid #e8b13a;padding:6px 10px;margin:8px 0}
.tablewrap{overflow-x:auto}
details{margin:8px 0}
summary{cursor:pointer;color:#333;font-size:0.92em}
nav a{margin-right:12px;font-size:0.9em}
"""

_CHECK = """
var llmsimErrors = 0;
window.addEventListener('error', function () { llmsimErrors++; }, true);
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('figure img');
  var ok = 0;
  imgs.forEach(function (im) { if (im.complete && im.naturalWidth > 0) ok++; });
  var svgs = document.querySelectorAll('figure svg').length;
  var b = document.body;
  b.setAttribute('data-figures-loaded', (ok + svgs) + '/' + (imgs.length + svgs));
  b.setAttribute('data-tables', document.querySelectorAll('table[data-table]').length);
  // a self-contained page fetches nothing: data: URIs are not resource entries
  b.setAttribute('data-external-resources', performance.getEntriesByType('resource').length);
  b.setAttribute('data-errors', llmsimErrors);
});
"""


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hardware_files(hw) -> list[tuple[str, str, str]]:
    """(role, name, path) of the YAML files behind a Chip or System (system file, then its chip's)."""
    out = []
    chip = getattr(hw, "chip", None)
    if chip is not None:  # a System
        if getattr(hw, "path", None) and hw.path != getattr(chip, "path", None):
            out.append(("system", hw.name, hw.path))
        hw = chip
    if getattr(hw, "path", None):
        out.append(("chip", hw.name, hw.path))
    return out


def model_files(model) -> list[tuple[str, str, str]]:
    """(role, name, path) of the model config file behind a model name or path (none for a
    model without a file)."""
    spec = load_model(model)
    return [("model", spec.name, spec.source)] if spec.source else []


def stack_files(stack) -> list[tuple[str, str, str]]:
    """(role, name, path) of the serving-stack file a run used (a catalog name, a path or None: the default)."""
    from hwmodels.stack import load_stack

    st = load_stack(stack)
    return [("stack", st.name, st.path)] if st.path else []


def file_hashes(files) -> pd.DataFrame:
    """``files``: (role, name, path) triples -> a frame with ``role``, ``name``, ``path``,
    ``sha256`` and ``bytes`` (duplicates dropped; a missing file gets sha256 'missing')."""
    rows, seen = [], set()
    for role, name, path in files:
        if not path or str(path) in seen:
            continue
        seen.add(str(path))
        p = Path(path)
        if p.is_file():
            rows.append({"role": role, "name": name, "path": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size})
        else:
            rows.append({"role": role, "name": name, "path": str(p), "sha256": "missing", "bytes": None})
    return pd.DataFrame(rows, columns=["role", "name", "path", "sha256", "bytes"])


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
        if r.returncode != 0:
            return None
        commit = r.stdout.strip()
        d = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5, check=False)
        return commit + (" (with local changes)" if d.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    """llmsim, Python and library versions, platform, time (UTC) and git commit (when available)."""
    import matplotlib
    import numpy

    env = {
        "llmsim": llmsim_version(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        "matplotlib": matplotlib.__version__,
        "platform": platform.platform(),
        "generated (UTC)": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
    commit = _git_commit()
    if commit:
        env["git commit"] = commit
    return env


def _slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-").lower()
    return s or "item"


def _numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


class Report:
    """An HTML report under construction; :meth:`write` puts it (and its CSVs) in a folder."""

    def __init__(self, title: str, subtitle: str | None = None):
        self.title = title
        self.subtitle = subtitle
        self._parts: list = []
        self.tables: dict = {}  # name -> DataFrame (raw), written as CSV
        self.figures: dict = {}  # name -> (png bytes, svg text)
        self._sections: list = []
        self.env = environment()

    # -- content --------------------------------------------------------------------------------
    def section(self, heading: str, text: str | None = None) -> Report:
        anchor = _slug(heading)
        self._sections.append((anchor, heading))
        self._parts.append(f'<h2 id="{anchor}">{html.escape(heading)}</h2>')
        if text:
            self.paragraph(text)
        return self

    def subsection(self, heading: str) -> Report:
        self._parts.append(f"<h3>{html.escape(heading)}</h3>")
        return self

    def paragraph(self, text: str) -> Report:
        self._parts.append(f"<p>{html.escape(text)}</p>")
        return self

    def note(self, text: str) -> Report:
        self._parts.append(f'<div class="note">{html.escape(text)}</div>')
        return self

    def code(self, text: str) -> Report:
        self._parts.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def table(self, df: pd.DataFrame, name: str, caption: str | None = None, max_rows: int | None = 200,
              formatted: bool = True, index: bool = False, collapsed: bool = False) -> Report:
        """Add ``df`` as a table (cells shown with units when ``formatted``) and save it as ``name``.csv.

        ``collapsed``: inside a closed <details> element (for long tables), the caption as its summary."""
        name = _slug(name)
        if name in self.tables:
            raise ValueError(f"a table named {name!r} is already in the report")
        raw = df.reset_index() if index else df
        self.tables[name] = raw
        shown = raw.head(max_rows) if max_rows else raw
        cells = format_frame(shown) if formatted else shown.astype(str)
        numeric = {c: _numeric(raw[c]) for c in raw.columns}
        # a person reads the label ('TTFT'); the column's name ('ttft_s', as in the CSV) is its tooltip
        head = "".join(f'<th title="{html.escape(str(c))}">{html.escape(title_of(str(c)) if formatted else str(c))}</th>'
                       for c in raw.columns)
        body = []
        for i in range(len(cells)):
            tds = []
            for c in raw.columns:
                cls = ' class="num"' if numeric[c] else ""
                tds.append(f"<td{cls}>{html.escape(str(cells[c].iloc[i]))}</td>")
            body.append("<tr>" + "".join(tds) + "</tr>")
        more = ""
        if max_rows and len(raw) > max_rows:
            more = f" Showing {max_rows} of {len(raw)} rows; all of them are in {name}.csv."
        cap = html.escape((caption or "") + more + f" [{name}.csv]")
        block = (f'<div class="tablewrap"><table data-table="{name}" id="table-{name}"><thead><tr>{head}</tr></thead>'
                 f'<tbody>{"".join(body)}</tbody></table><div class="caption">{cap}</div></div>')
        if collapsed:
            block = f'<details><summary>{html.escape(caption or name)} ({len(raw)} rows)</summary>{block}</details>'
        self._parts.append(block)
        return self

    def key_values(self, pairs, name: str, caption: str | None = None, formatted: bool = True,
                   collapsed: bool = False) -> Report:
        """A table of ``pairs`` (dict or list of pairs): ``quantity`` (a readable title, when
        ``formatted``; the key itself otherwise) and ``value`` (with its unit when ``formatted``);
        the CSV keeps the keys and the raw values."""
        items = list(pairs.items()) if isinstance(pairs, dict) else list(pairs)
        keys = [str(k) for k, _ in items]
        if formatted:
            df = pd.DataFrame({"quantity": [title_of(k) for k in keys],
                               "value": [format_value(k, v) for k, v in items]})
        else:
            df = pd.DataFrame({"quantity": [title_of(k) for k in keys],
                               "value": ["-" if v is None else str(v) for _, v in items]})
        self.table(df, name, caption, formatted=False, collapsed=collapsed)
        self.tables[_slug(name)] = pd.DataFrame({"key": keys, "value": [v for _, v in items]})
        return self

    def figure(self, fig, name: str, caption: str | None = None, inline_svg: bool = False) -> Report:
        """Embed ``fig`` (PNG in an <img>, or inline SVG) and keep it for saving as name.png/.svg."""
        name = _slug(name)
        if name in self.figures:
            raise ValueError(f"a figure named {name!r} is already in the report")
        png = figure_png(fig)
        svg = figure_svg(fig) if inline_svg else None
        self.figures[name] = fig
        if inline_svg:
            body = re.sub(r"^.*?(<svg)", r"\1", svg, count=1, flags=re.DOTALL)  # drop the XML prolog and doctype
        else:
            b64 = base64.b64encode(png).decode("ascii")
            body = f'<img alt="{html.escape(caption or name)}" src="data:image/png;base64,{b64}">'
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._parts.append(f'<figure data-figure="{name}" id="figure-{name}">{body}{cap}</figure>')
        return self

    def provenance(self, inputs: dict | None = None, files=None, command: str | None = None) -> Report:
        """The reproducibility section: command, inputs, environment and file hashes."""
        self.section("Inputs and reproducibility")
        if command:
            self.paragraph("Command:")
            self.code(command)
        if inputs:
            self.key_values(inputs, "inputs", "Every input and assumption of this run.", formatted=False)
        self.key_values(self.env, "environment", "Software that produced this report.", formatted=False)
        if files is not None:
            fh = file_hashes(files)
            if len(fh):
                self.table(fh, "input-files", "SHA-256 of every hardware and model file used (before overrides, "
                                              "which are listed with the inputs).", formatted=False)
        return self

    # -- output ---------------------------------------------------------------------------------
    def html(self) -> str:
        nav = " ".join(f'<a href="#{a}">{html.escape(h)}</a>' for a, h in self._sections)
        sub = f'<p class="sub">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<meta name=\"generator\" content=\"llmsim {html.escape(self.env['llmsim'])}\">"
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>"
                f"<body><main><h1>{html.escape(self.title)}</h1>{sub}<nav>{nav}</nav>\n"
                + "\n".join(self._parts)
                + f"\n</main><script>{_CHECK}</script></body></html>\n")

    def write(self, out_dir, filename: str = "report.html", figures: bool = True) -> Path:
        """Write the HTML, every table as CSV and (``figures``) every figure as PNG and SVG under
        ``out_dir/figures``; returns the HTML path."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        for name, df in self.tables.items():
            df.to_csv(d / f"{name}.csv", index=False)
        if figures:
            for name, fig in self.figures.items():
                save(fig, d / "figures" / name)
        path = d / filename
        path.write_text(self.html(), encoding="utf-8")
        return path


def command_line(argv=None) -> str:
    """The command as typed (shell-quoted), for the reproducibility section."""
    import shlex

    argv = sys.argv if argv is None else argv
    prog = Path(argv[0]).name if argv else "llmsim"
    return " ".join([prog if prog != "__main__.py" else "llmsim"] + [shlex.quote(a) for a in argv[1:]])
