"""Several chips or systems side by side on one workload (``llmsim compare`` and ``llmsim.compare``).

Each hardware entry is predicted with :func:`sim.predict.predict` on the same model, batch,
lengths, parallelism and quantization. An entry is a catalog name or YAML path, optionally with
its own overrides after commas (``"h100-sxm,memory.hbm.bandwidth=6 TB/s"``) so variants of one
chip can be compared; ``overrides`` apply to every entry. Hardware on which the workload cannot
run is kept with ``fits`` False and its ``reason``.
"""

from __future__ import annotations

from pathlib import Path

from hwmodels.errors import InfeasibleError, SpecError

__all__ = ["compare", "compare_records", "parse_hw", "results_frame"]


def parse_hw(entry: str) -> tuple[str, list[str]]:
    """'name,path=value,...' -> (name, ['path=value', ...])."""
    parts = [x.strip() for x in str(entry).split(",")]
    name, ovr = parts[0], [x for x in parts[1:] if x]
    if not name:
        raise SpecError(f"--hw {entry!r}: no hardware name before the overrides")
    bad = [x for x in ovr if "=" not in x]
    if bad:
        raise SpecError(f"--hw {entry!r}: expected PATH=VALUE after the name, got {bad[0]!r} (a value with a comma "
                        "cannot go here; use --set)")
    return name, ovr


def compare_records(model, hardware, batch: int, input_len: int, output_len: int, overrides=None,
                    **predict_kw) -> list[dict]:
    """One record per hardware entry: label, hardware, overrides, fits, reason, the prediction's
    fields and ``memory_used_bytes``/``bound`` (the bound with the largest share), plus the
    Prediction object under ``_prediction`` (None when it cannot run). ``predict_kw`` go to
    :func:`sim.predict.predict` (tp, pp, ep, quant, options, techniques...)."""
    from sim.predict import predict

    if isinstance(hardware, str):
        hardware = [hardware]
    records = []
    variants: dict = {}
    for entry in hardware:
        name, own = parse_hw(entry)
        ovr = list(overrides or []) + own
        # a file is labelled by its stem; variants of one chip get short labels so columns stay narrow
        base = Path(name).stem if name.endswith((".yaml", ".yml")) or "/" in name else name
        if own:
            variants[base] = variants.get(base, 0) + 1
            label = f"{base} v{variants[base]}"
        else:
            label = base
        rec = {"label": label, "hardware": name, "overrides": ovr, "_own_overrides": own}
        try:
            p = predict(model, name, batch, input_len, output_len, overrides=ovr or None, **predict_kw)
        except InfeasibleError as e:
            rec.update({"fits": False, "reason": str(e), **{k: v for k, v in (e.numbers or {}).items()},
                        "_prediction": None})
            records.append(rec)
            continue
        d = p.to_dict()
        d.pop("hardware", None)
        rec.update(d)
        rec["memory_used_bytes"] = p.weights_bytes + p.kv_cache_bytes + p.activation_bytes
        rec["bound"] = max(p.bound_breakdown.items(), key=lambda kv: kv[1])[0] if p.bound_breakdown else None
        rec["_prediction"] = p
        records.append(rec)
    return records


def results_frame(records):
    """The records as a DataFrame (no Prediction objects, no nested dicts)."""
    import pandas as pd

    rows = []
    for r in records:
        rows.append({k: (", ".join(v) if k == "overrides" else v) for k, v in r.items()
                     if not k.startswith("_") and not isinstance(v, dict) and k != "notes"})
    return pd.DataFrame(rows)


def compare(model, hardware, batch: int, input_len: int, output_len: int, overrides=None, **predict_kw):
    """The same workload on several chips or systems: a DataFrame with one row per entry (the
    columns of ``llmsim compare --out``'s comparison.csv: label, hardware, fits, reason, ttft_s,
    tpot_s, output_throughput_tok_s, usd_per_mtok_output, ...; raw SI values).

    >>> llmsim.compare("llama-3.1-8b", ["a100-sxm", "h100-sxm"], batch=32, input_len=1024, output_len=256)
    """
    return results_frame(compare_records(model, hardware, batch, input_len, output_len, overrides, **predict_kw))
