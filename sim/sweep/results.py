"""Sweep results on disk: a folder of Parquet parts, written as points finish, read as one table.

``--out results.parquet`` names a folder (a Parquet dataset: ``pandas.read_parquet`` and
``pyarrow.dataset`` read it whole) holding ``part-NNNNN.parquet`` files and ``_sweep.json``
(the spec's name and fingerprint, units, assumptions). Every part is written to a temporary
name and renamed, so a sweep interrupted at any moment leaves only complete parts: nothing that
finished is lost, and a rerun reads the point ids already there and skips them. A complete run
compacts the parts into one, in the order the spec generates its points.

Rows are never edited in place: retrying a failed point appends its new row, and reading keeps
the last row of each point id.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from hwmodels.errors import Problem, SpecError

__all__ = ["ResultStore", "load_results"]

META = "_sweep.json"
INT_COLUMNS = ("tp", "pp", "ep", "replicas", "batch", "input_len", "output_len", "chips", "requests_completed",
               "requests_rejected")
STR_COLUMNS = ("point_id", "status", "reason", "error", "hardware", "system", "model", "quant", "cost_source")
BOOL_COLUMNS = ("fits", "meets_slo")


def _to_arrow(df: pd.DataFrame):
    """An Arrow table whose column types do not depend on which points a part happens to hold."""
    import pyarrow as pa

    cols, names = [], []
    for c in df.columns:
        s = df[c]
        if c in INT_COLUMNS:
            arr = pa.array(pd.to_numeric(s, errors="coerce").to_numpy(dtype=float), type=pa.float64(), from_pandas=True)
            arr = arr.cast(pa.int64())
        elif c in BOOL_COLUMNS:
            vals = s.to_numpy(dtype=object)
            arr = pa.array([None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else bool(v)
                            for v in vals] if vals.dtype == object and len(vals) < 1000 else
                           pd.array(s, dtype="boolean"), type=pa.bool_(), from_pandas=True)
        elif c in STR_COLUMNS:
            arr = pa.array(s.astype(object).where(s.notna(), None).to_numpy(dtype=object), type=pa.string(),
                           from_pandas=True)
        elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            arr = pa.array(s.to_numpy(), from_pandas=True)
        else:
            vals = s.astype(object).where(s.notna(), None).to_numpy(dtype=object)
            try:
                arr = pa.array(vals, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arr = pa.array([None if v is None else str(v) for v in vals], type=pa.string())
            if pa.types.is_null(arr.type):
                arr = arr.cast(pa.string())
        cols.append(arr)
        names.append(str(c))
    return pa.Table.from_arrays(cols, names=names)


def _write(df: pd.DataFrame, dest: Path) -> None:
    import pyarrow.parquet as pq

    tmp = dest.with_name("." + dest.name + ".tmp")
    pq.write_table(_to_arrow(df.reset_index(drop=True)), tmp)
    os.replace(tmp, dest)


def _ids(series) -> np.ndarray:
    return series.to_numpy(dtype=object)


class ResultStore:
    """A results folder (see the module docstring). ``fingerprint`` guards against mixing specs."""

    def __init__(self, path, fingerprint: str | None = None, meta: dict | None = None):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise SpecError([Problem(f"{self.path} is a file; --out names a folder of Parquet parts "
                                     "(created if missing); give another name")])
        self.meta = meta or {}
        mfile = self.path / META
        if mfile.exists():
            old = json.loads(mfile.read_text())
            if fingerprint is not None and old.get("fingerprint") not in (None, fingerprint):
                raise SpecError([Problem(
                    f"{self.path} holds results of a different sweep (spec '{old.get('name')}', fingerprint "
                    f"{old.get('fingerprint')}; this spec's is {fingerprint}): its hardware, model or fixed settings "
                    "differ, so its points cannot be reused. Give another --out, or delete the folder")])
            self.meta = {**old, **(meta or {})}
        if fingerprint is not None:
            self.meta["fingerprint"] = fingerprint
        self._written_meta = False

    def _ensure(self) -> None:
        if not self._written_meta:
            self.path.mkdir(parents=True, exist_ok=True)
            self.meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
            tmp = self.path / f".{META}.{uuid.uuid4().hex[:8]}"
            tmp.write_text(json.dumps(self.meta, indent=2, default=str) + "\n")
            os.replace(tmp, self.path / META)
            self._written_meta = True

    def parts(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted(self.path.glob("part-*.parquet"))

    def _next_name(self) -> Path:
        parts = self.parts()
        n = 0
        if parts:
            try:
                n = int(parts[-1].stem.split("-")[1]) + 1
            except (IndexError, ValueError):
                n = len(parts)
        return self.path / f"part-{n:05d}-{uuid.uuid4().hex[:6]}.parquet"

    def append(self, df: pd.DataFrame) -> None:
        """Write ``df`` as a new part (atomically: temporary name, then rename)."""
        if df is None or not len(df):
            return
        self._ensure()
        _write(df, self._next_name())

    def load(self) -> pd.DataFrame:
        """Every row, the last one of each point id."""
        frames = [pd.read_parquet(p) for p in self.parts()]
        if not frames:
            return pd.DataFrame()
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        dup = pd.Index(_ids(df["point_id"])).duplicated(keep="last")
        return df[~dup].reset_index(drop=True) if dup.any() else df

    def done_ids(self, retry_failed: bool = False) -> set:
        """Point ids with a result (failed ones count only without ``retry_failed``)."""
        ids: dict = {}
        for p in self.parts():
            t = pd.read_parquet(p, columns=["point_id", "status"])
            ids.update(zip(_ids(t["point_id"]), t["status"].to_numpy(dtype=object)))
        if retry_failed:
            return {k for k, s in ids.items() if s != "error"}
        return set(ids)

    def compact(self, order=None) -> pd.DataFrame:
        """The table in ``order`` of point ids (others after); rewrites the parts as one only when
        they are out of that order or hold superseded rows (retried points)."""
        frames = [pd.read_parquet(p) for p in self.parts()]
        if not frames:
            return pd.DataFrame()
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        dup = pd.Index(_ids(df["point_id"])).duplicated(keep="last")
        rewrite = bool(dup.any())
        if rewrite:
            df = df[~dup].reset_index(drop=True)
        if order is not None and len(df):
            key = pd.Index(np.asarray(order, dtype=object)).get_indexer(_ids(df["point_id"])).astype(float)
            missing = key < 0
            key[missing] = len(order) + np.arange(int(missing.sum()))
            if np.any(np.diff(key) < 0):
                df = df.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)
                rewrite = True
        if not rewrite:
            return df
        old = self.parts()
        self._ensure()
        dest = self.path / f"part-{0:05d}-{uuid.uuid4().hex[:6]}.parquet"
        _write(df, dest)
        for p in old:
            if p != dest:
                p.unlink(missing_ok=True)
        return df


def load_results(path) -> pd.DataFrame:
    """A sweep's results folder (or a single Parquet file) as one DataFrame."""
    p = Path(path)
    if p.is_file():
        return pd.read_parquet(p)
    if not p.exists():
        raise SpecError([Problem(f"no such results folder: {path}")])
    return ResultStore(p).load()
