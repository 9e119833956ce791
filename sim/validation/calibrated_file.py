"""Writing a calibration as a hardware file: the base file with its efficiency fields replaced by
the fitted ones, each with its source (the measurement and the held-out error), checked by the
same loader as every catalog file."""

from __future__ import annotations

import math
from pathlib import Path

from hwmodels.errors import Problem, SpecError
from hwmodels.loader import check_files, resolve
from hwmodels.units import format_quantity
from sim.validation.calibrate import Calibration, _chip_of

__all__ = ["calibrated_yaml", "write_calibrated"]


def _fmt_bytes(b: float) -> str:
    return format_quantity(b, "bytes", 4)


def _fmt_flops(x: float) -> str:
    return format_quantity(x, "flops", 4)


def _fmt_time(s: float) -> str:
    if s == 0:
        return "0 s"

    return format_quantity(s, "time", 4)


def calibrated_yaml(cal: Calibration, name: str | None = None, chip_ref: str | None = None) -> dict:
    """The original YAML data with the fitted fields set (plain data, ready for yaml.safe_dump)."""
    import yaml

    path = Path(cal.base.path) if getattr(cal.base, "path", None) else resolve(cal.name)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    k = cal.knobs
    held = cal.table()
    fitted_ops = sorted(set(cal.train["op"]))
    errs = ", ".join(f"{r['op']} {r['calibrated_median_ape']:.1%}" for r in held.to_dict("records")
                     if r["op"] in fitted_ops and isinstance(r.get("calibrated_median_ape"), float)
                     and math.isfinite(r["calibrated_median_ape"]))
    fit_note = (f"{cal.loss} |ln(pred/meas)| over {cal.counts.get('fit_shapes')} training shapes of "
                f"{', '.join(fitted_ops)}; split by shape, fold {cal.holdout} of {cal.folds} held out; held-out "
                f"median |error|: {errs or 'no held-out rows'}")
    src = f"llmsim calibrate: fitted to {cal.measurement} ({fit_note})"
    is_system = data.get("kind") == "system"
    chip_data = None if is_system else data
    if chip_data is not None:
        chip = _chip_of(cal.base)
        mu = chip.matrix_unit()
        if k.matrix is not None:
            want = mu.kind
            for u in chip_data.get("compute", []):
                if u.get("kind") == want:
                    u["efficiency"] = [[_fmt_flops(s), round(float(f), 4)] for s, f in k.matrix] \
                        if isinstance(k.matrix, tuple) else round(float(k.matrix), 4)
                    u["efficiency_source"] = src
                    break
        if k.memory is not None:
            main = chip.main_memory.name
            for m in chip_data.get("memory", []):
                if m.get("name") == main:
                    m["efficiency"] = [[_fmt_bytes(s), round(float(f), 4)] for s, f in k.memory]
                    m["efficiency_source"] = src
                    break
        if k.by_kind is not None:
            main = chip.main_memory.name
            for m in chip_data.get("memory", []):
                if m.get("name") == main:
                    m["efficiency_by_kind"] = {kind: round(float(f), 4) for kind, f in k.by_kind}
                    kinds = ", ".join(kind for kind, _ in k.by_kind)
                    m["efficiency_source"] = (src + f"; efficiency_by_kind: each of {kinds} fitted on its own "
                                              "exact training rows of that kind (same split), after the GEMM fit")
                    if k.memory is None:
                        m["efficiency_source"] = m["efficiency_source"].replace(
                            f"training shapes of {', '.join(fitted_ops)}", "training shapes")
                    break
        if k.fixed is not None:
            chip_data["kernel_fixed_time"] = _fmt_time(k.fixed)
            chip_data["kernel_fixed_time_source"] = src + "; the GPU-side time per kernel of the rows' kernel " \
                                                          "durations (no CPU launch)"
        if k.launch is not None:
            chip_data["launch_overhead"] = _fmt_time(k.launch)
            chip_data["launch_overhead_source"] = src + "; a fixed per-kernel time (for GPU kernel timings from a " \
                                                          "profiler this is GPU-side, not the CPU launch cost)"
    else:
        if chip_ref:
            data["chip"] = chip_ref
        tiers = data.get("tiers") or []
        if tiers and (k.tier is not None or k.tier_latency is not None):
            if k.tier is not None:
                tiers[0]["efficiency"] = round(float(k.tier), 4)
                tiers[0]["efficiency_source"] = src
            if k.tier_latency is not None:
                tiers[0]["latency"] = _fmt_time(k.tier_latency)
    if chip_data is not None and (k.matrix is not None or k.memory is not None or k.by_kind is not None):
        chip_data["calibration"] = "measured"  # the fitted efficiency fields rest on kernel measurements
    orig = data.get("name")
    data["name"] = name or f"{orig}-calibrated"
    desc = data.get("description") or ""
    data["description"] = (f"{orig} with its achievable-efficiency fields calibrated by `llmsim calibrate` to "
                           f"{cal.measurement}. " + str(desc)).strip()
    srcs = data.get("source") or []
    srcs = [srcs] if isinstance(srcs, str) else list(srcs)
    srcs.append(f"calibration measurement: {cal.measurement} ({cal.counts.get('train_rows')} training rows, "
                f"{cal.counts.get('test_rows')} held out)")
    data["source"] = srcs
    return data


def _dumper():
    """A safe YAML dumper that writes short scalar lists and mappings in flow style, like the catalog."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def short(v):
        return isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 24)

    def seq(d, data):
        flow = len(data) <= 8 and all(short(x) or (isinstance(x, list) and all(short(y) for y in x)) for x in data)
        return d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)

    def mapping(d, data):
        flow = len(data) <= 8 and all(short(v) for v in data.values())
        return d.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)

    Dumper.add_representer(list, seq)
    Dumper.add_representer(dict, mapping)
    return Dumper


def write_calibrated(cal: Calibration, out, name: str | None = None, chip_ref: str | None = None) -> Path:
    """Write the calibrated hardware file and check that it loads; returns its path."""
    import yaml

    out = Path(out)
    name = name or out.stem  # a hardware file's name is its file stem (docs/hardware-format.md)
    if name != out.stem:
        raise SpecError([Problem(f"--name {name!r} differs from the file name {out.name!r}; a hardware file's "
                                 f"name equals its stem: write to {name}.yaml or leave --name out")])
    data = calibrated_yaml(cal, name, chip_ref)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Generated by `llmsim calibrate` from {cal.name} and {cal.measurement}; edit the original and "
              f"re-run rather than editing this file.\n")
    out.write_text(header + yaml.dump(data, Dumper=_dumper(), sort_keys=False, allow_unicode=True, width=110),
                   encoding="utf-8")
    problems = check_files([str(out)])[0][1]
    if problems:
        raise SpecError(problems)
    return out


