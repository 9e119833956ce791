"""OpenXLA's default GEMM performance table as a held-out GEMM set (never fitted to).

XLA's GPU cost model ships a table of measured matmul rates, ``default_matmul_perf_table.txtpb``
(openxla/xla, ``xla/service/gpu/model/``; Apache-2.0), a text proto ``xla.GemmPerfTable``: per GPU
key (``sm_90``, ``sm_100_B200``, ...) a grid of batched GEMMs (``b`` x [m x k] @ [k x n], b in
{1, 2, 4}, m, n, k in {256, ..., 4096}) with the FLOP/s reached per dtype combination
(``"bf16xbf16->bf16"``, ``"f32xf32->f32"``, ``"f8e4m3fnxf8e4m3fn->bf16"``, ...). The time of a row is
2 * b * m * n * k / FLOP/s (every rate in the table is that over a whole number of nanoseconds).

This module

- parses the text proto (:func:`parse_table`), keeps the GPUs the catalog has (:data:`GPUS`) and
  the dtypes it can price (:data:`DTYPES`) and writes ``xla_gemm.csv`` in the measured-CSV format
  (:func:`table_rows`, :func:`write_csv`); ``python -m sim.validation.published_xla`` regenerates
  the CSV from the saved table, and ``--extract FILE`` first cuts the saved table out of a file that
  holds it (the upstream .txtpb, or a binary that embeds it: see the data README);
- loads the CSV with its row checks (:func:`load_xla_gemms`: file, row and field of each problem);
- scores it the way the other published GEMM rows are scored (:func:`score_xla_gemms`: the shared
  ``sim.validation.compare`` path, ``llmsim ops`` pricing with the catalog chip files and the
  default stack) and summarises it per GPU and dtype (:func:`summary_rows`).

The project reads only the saved copy under ``sim/validation/data/published/``; nothing is fetched.
"""

from __future__ import annotations

import argparse
import math
import os
import re

import numpy as np
import pandas as pd

from hwmodels.errors import SpecError
from sim.cost import CostOptions

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "published")
TABLE = os.path.join(DATA, "xla_default_matmul_perf_table.txtpb")
CSV = os.path.join(DATA, "xla_gemm.csv")
#: XLA's GPU key -> catalog chip (docs: sim/validation/data/published/README.md, "XLA GEMM table")
GPUS = {"sm_90": "h100-sxm", "sm_100_B200": "b200"}
#: XLA's dtype key -> the dtype the row is priced in. XLA runs an f32 dot on TF32 tensor cores by
#: default on these GPUs (its rates exceed the FP32 CUDA-core peak several fold), so f32 rows are
#: tf32 math on fp32 operands; fp8 rows are e4m3 x e4m3 with a bf16 output (priced so: :data:`OUT_DTYPES`,
#: the ``out_dtype`` of the loaded rows). The two mixed fp8 combinations repeat the same shapes and are left out.
DTYPES = {"bf16xbf16->bf16": "bf16", "f32xf32->f32": "tf32", "f8e4m3fnxf8e4m3fn->bf16": "fp8_e4m3"}
#: XLA's dtype key -> the dtype C is written in (the part after '->'; an f32 dot writes fp32)
OUT_DTYPES = {"bf16xbf16->bf16": "bf16", "f32xf32->f32": "fp32", "f8e4m3fnxf8e4m3fn->bf16": "bf16"}
#: (GPU key, dtype key) pairs left out, with the reason (README: XLA GEMM table)
EXCLUDED = {("sm_90", "f8e4m3fnxf8e4m3fn->bf16"):
            "29 of its 375 rates exceed the H100's dense FP8 peak (1,979 TFLOP/s), up to 2,593 TFLOP/s at b=4 "
            "4096^3 (131%): the times cannot be those of the whole dot, so none of the column is used"}
SOURCE = "openxla/xla default_matmul_perf_table.txtpb (Apache-2.0; README: XLA GEMM table)"
COLUMNS = ("hardware", "op", "dtype", "m", "n", "k", "batch", "measured_time_s", "xla_gpu", "xla_dtype", "xla_flops",
           "source")
SHAPE = ("m", "n", "k", "batch")

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|[{}:]')


def _tokens(text: str, path: str):
    """(token, line) pairs of a text proto; SpecError naming the line of a character it cannot read."""
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SpecError(f"{path}: line {line}: unexpected character {text[pos]!r}")
        tok = m.group(0)
        if not tok.isspace() and not tok.startswith("#"):
            yield tok, line
        line += tok.count("\n")
        pos = m.end()


def _message(toks, path: str, closing: bool) -> list:
    """The fields of one message as (name, value, line) in order; a value is a str, an int or a list
    (a nested message)."""
    out = []
    for tok, line in toks:
        if tok == "}":
            if not closing:
                raise SpecError(f"{path}: line {line}: unmatched '}}'")
            return out
        if not re.match(r"[A-Za-z_]", tok):
            raise SpecError(f"{path}: line {line}: expected a field name, got {tok!r}")
        nxt, nline = next(toks, (None, line))
        if nxt == ":":
            nxt, nline = next(toks, (None, line))
        if nxt == "{":
            out.append((tok, _message(toks, path, True), line))
        elif nxt is not None and nxt.startswith('"'):
            out.append((tok, nxt[1:-1], line))
        elif nxt is not None and re.fullmatch(r"-?\d+", nxt):
            out.append((tok, int(nxt), line))
        else:
            raise SpecError(f"{path}: line {nline}: field {tok!r}: expected a value, got {nxt!r}")
    if closing:
        raise SpecError(f"{path}: the text ends inside a message (a '}}' is missing)")
    return out


def _field(msg: list, name: str, path: str, line: int, kind=int):
    vals = [(v, ln) for k, v, ln in msg if k == name]
    if len(vals) != 1 or not isinstance(vals[0][0], kind):
        raise SpecError(f"{path}: line {line}: expected one {kind.__name__} field {name!r}, found "
                        f"{[v for v, _ in vals]!r}")
    return vals[0][0]


def parse_table(text: str, path: str = "<table>") -> dict:
    """A GemmPerfTable text proto -> {GPU key: [{"b", "m", "n", "k", "line", "flops": {dtype key: FLOP/s}}]}.

    Reads the upstream file as it is (comments, any layout); SpecError naming the line of anything
    that is not a GemmPerfTable (a missing b/m/n/k, a non-integer rate, an unbalanced brace)."""
    top = _message(_tokens(text, path), path, False)
    table: dict = {}
    for name, gpu, line in top:
        if name != "entries" or not isinstance(gpu, list):
            raise SpecError(f"{path}: line {line}: expected 'entries {{ key: ... value {{ ... }} }}', got {name!r}")
        key = _field(gpu, "key", path, line, str)
        value = _field(gpu, "value", path, line, list)
        rows = table.setdefault(key, [])
        for ename, e, eline in value:
            if ename != "entries" or not isinstance(e, list):
                raise SpecError(f"{path}: line {eline}: GPU {key!r}: expected 'entries {{ ... }}', got {ename!r}")
            row = {f: _field(e, f, path, eline) for f in ("b", "m", "n", "k")}
            row["line"] = eline
            row["flops"] = {}
            for fname, fl, fline in e:
                if fname == "flops":
                    row["flops"][_field(fl, "key", path, fline, str)] = _field(fl, "value", path, fline)
            rows.append(row)
    return table


def table_rows(table: dict, gpus: dict = GPUS, dtypes: dict = DTYPES) -> list[dict]:
    """One measured-CSV row per (kept GPU, entry, kept dtype; not :data:`EXCLUDED`): time = 2 b m n k / FLOP/s."""
    out = []
    for key, hw in gpus.items():
        for e in table.get(key, []):
            for xdt, dt in dtypes.items():
                f = e["flops"].get(xdt)
                if f is None or (key, xdt) in EXCLUDED:
                    continue
                b, m, n, k = e["b"], e["m"], e["n"], e["k"]
                out.append({"hardware": hw, "op": "gemm", "dtype": dt, "m": m, "n": n, "k": k, "batch": b,
                            "measured_time_s": f"{2.0 * b * m * n * k / f:.9g}", "xla_gpu": key, "xla_dtype": xdt,
                            "xla_flops": f, "source": SOURCE})
    return out


def write_csv(rows: list[dict], path: str = CSV) -> None:
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(path, index=False)


def extract(text: str, keys=tuple(GPUS)) -> str:
    """The licence header and the ``entries`` blocks of ``keys`` cut, byte for byte, out of a text that
    holds the table (the upstream .txtpb, or the table as a binary embeds it)."""
    anchor = text.find("# proto-message: xla.GemmPerfTable")
    start = text.rfind("# Copyright", 0, anchor) if anchor >= 0 else -1
    if start < 0:
        raise SpecError("no GemmPerfTable (a '# Copyright' header, then '# proto-message: xla.GemmPerfTable') found")
    end = text.find("\x00", anchor)  # a binary ends the embedded string with a NUL
    text = text[start:] if end < 0 else text[start:end]
    starts = [m.start() + 1 for m in re.finditer(r'\nentries \{\n  key: "[^"]+"', text)]
    if not starts:
        raise SpecError("no 'entries { key: ... }' block found after the header")
    bounds = list(zip(starts, starts[1:] + [len(text)]))
    blocks = {re.match(r'entries \{\n  key: "([^"]+)"', text[a:b]).group(1): text[a:b] for a, b in bounds}
    missing = [k for k in keys if k not in blocks]
    if missing:
        raise SpecError(f"GPU key(s) {', '.join(missing)} not in the table (found {', '.join(blocks)})")
    return text[:starts[0]] + "".join(blocks[k].rstrip("\n") + "\n" for k in keys)


def _whole(v, least: int) -> bool:
    try:
        f = float(v)
        return math.isfinite(f) and f == int(f) and int(f) >= least
    except (TypeError, ValueError, OverflowError):
        return False


def load_xla_gemms(path: str = CSV) -> pd.DataFrame:
    """The XLA GEMM CSV with its checks: the columns, a source on every row, a catalog GPU of
    :data:`GPUS`, op gemm, a dtype of :data:`DTYPES` that matches ``xla_dtype``, whole m, n, k, batch
    >= 1, a positive ``xla_flops`` and a positive ``measured_time_s`` equal to 2 b m n k / xla_flops
    (to 1e-5). Every problem names the file, the row's line and the field's column; all at once (SpecError).
    The loaded frame gains ``out_dtype``, the dtype the dot writes (:data:`OUT_DTYPES`)."""
    from sim.validation.published import RowProblems, read_table

    df, lines = read_table(path, COLUMNS)
    problems = RowProblems(path, df, lines)
    for i, r in enumerate(df.to_dict("records")):
        def bad(field, expected):
            problems.add(i, field, f"expected {expected}, got {r[field]!r}")

        if not r["source"].strip():
            bad("source", "a source (URL or citation)")
        if r["hardware"] not in GPUS.values():
            bad("hardware", f"one of {', '.join(GPUS.values())}")
        if r["op"] != "gemm":
            bad("op", "'gemm'")
        if r["xla_dtype"] not in DTYPES:
            bad("xla_dtype", f"one of {', '.join(DTYPES)}")
        elif r["dtype"] != DTYPES[r["xla_dtype"]]:
            bad("dtype", f"{DTYPES[r['xla_dtype']]!r} (the dtype of xla_dtype {r['xla_dtype']!r})")
        shape_ok = True
        for f in SHAPE:
            if not _whole(r[f], 1):
                bad(f, "a whole number >= 1")
                shape_ok = False
        flops_ok = _whole(r["xla_flops"], 1)
        if not flops_ok:
            bad("xla_flops", "a positive whole number of FLOP/s")
        try:
            t = float(r["measured_time_s"])
            ok = math.isfinite(t) and t > 0
        except ValueError:
            ok = False
        if not ok:
            bad("measured_time_s", "a positive number of seconds")
        elif shape_ok and flops_ok:
            want = 2.0 * math.prod(float(r[f]) for f in SHAPE) / float(r["xla_flops"])
            if abs(t / want - 1.0) > 1e-5:
                bad("measured_time_s", f"2 b m n k / xla_flops = {want:.6g} s")
    problems.check()
    for f in SHAPE + ("xla_flops",):
        df[f] = df[f].astype(float).astype(np.int64)
    df["measured_time_s"] = df["measured_time_s"].astype(float)
    df["out_dtype"] = df["xla_dtype"].map(OUT_DTYPES)  # what the dot writes (``llmsim ops``' out_dtype column)
    return df


def score_xla_gemms(path: str = CSV, options: CostOptions | None = None, hardware: dict | None = None):
    """Every row priced as ``llmsim ops`` prices it (``sim.validation.compare``: the catalog chip files,
    the default stack, ``batch`` as the GEMM count), held out: a Comparison whose ``scored`` frame has
    ``predicted_time_s``, ``rel_error`` (+: the model is too slow) and ``bound``. The table's times are GPU
    kernel durations (xla/tools/matmul_perf_table_gen.cc: HloOpProfiler's CUPTI kernel tracer, the median
    over 5 runs), so by default each kernel pays the chip's GPU-side ``kernel_fixed_time`` and no CPU launch
    (``cuda_graphs``), as Vidur's kernel rows are scored."""
    from sim.validation.compare import compare

    return compare(load_xla_gemms(path), options=options or CostOptions(cuda_graphs=True), hardware=hardware)


def summary_rows(scored: pd.DataFrame) -> list[dict]:
    """Per GPU and dtype (then per GPU, then all): rows, median |error|, bias (median signed error),
    the share within 10 % and 20 %, and the measured median TFLOP/s."""
    groups = [((hw, dt), g) for (hw, dt), g in scored.groupby(["hardware", "dtype"], sort=True)]
    groups += [((hw, "all"), g) for hw, g in scored.groupby("hardware", sort=True)]
    groups.append((("all", "all"), scored))
    out = []
    for (hw, dt), g in groups:
        e = g["rel_error"].to_numpy(float)
        flops = 2.0 * g["m"] * g["n"] * g["k"] * g["batch"] / g["measured_time_s"]
        out.append({"hardware": hw, "dtype": dt, "n": len(g), "ape": float(np.median(np.abs(e))),
                    "bias": float(np.median(e)), "within_10": float(np.mean(np.abs(e) <= 0.1)),
                    "within_20": float(np.mean(np.abs(e) <= 0.2)), "tflops": float(np.median(flops)) / 1e12})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.validation.published_xla",
                                description="Rebuild xla_gemm.csv from the saved XLA matmul table.")
    p.add_argument("--extract", metavar="FILE",
                   help="first cut the header and the sm_90 / sm_100_B200 blocks out of FILE (the upstream "
                        ".txtpb, or a binary that embeds it) into the saved table")
    a = p.parse_args(argv)
    if a.extract:
        with open(a.extract, "rb") as f:
            text = f.read().decode("latin-1")
        with open(TABLE, "w", encoding="utf-8", newline="\n") as f:
            f.write(extract(text))
    with open(TABLE, encoding="utf-8") as f:
        rows = table_rows(parse_table(f.read(), TABLE))
    write_csv(rows)
    print(f"{CSV}: {len(rows)} rows")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
