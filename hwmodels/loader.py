"""Load chips and systems from YAML: the catalog by name, or a user's file by path.

``load_chip``/``load_system`` take a catalog name (``h100-sxm``) or a path, plus optional
overrides (``{"memory.hbm.bandwidth": "6 TB/s"}`` or ``["memory.hbm.bandwidth=6 TB/s"]``) that are
applied to the YAML data *before* validation, so an override is checked like a file value.
Every problem is reported at once as a SpecError.
"""

from __future__ import annotations

import difflib
import re
import functools
import os
from dataclasses import replace
from pathlib import Path

import yaml

from hwmodels.chip import Chip, ComputeUnit, Link, MemoryLevel, System, Tier
from hwmodels.classes import chip_classes
from hwmodels.errors import Problem, SpecError
from hwmodels.schema import CHIP, SYSTEM, validate
from hwmodels.yamlio import Marked, dotted, load_marked, read_yaml

CATALOG = Path(__file__).parent / "catalog"


# ---------------------------------------------------------------------------------------------
# the catalog

@functools.lru_cache(maxsize=1)
def _catalog_index() -> dict:
    """name -> (kind, path) for every catalog file."""
    out = {}
    for sub, kind in (("chips", "chip"), ("systems", "system")):
        for p in sorted((CATALOG / sub).glob("*.yaml")):
            out[p.stem] = (kind, p)
    return out


def list_hardware() -> list[dict]:
    """Every catalog entry: name, kind, description (loaded lazily from the files)."""
    rows = []
    for name, (kind, path) in _catalog_index().items():
        try:
            hw = load_hardware(name)
        except SpecError as e:
            rows.append({"name": name, "kind": kind, "path": str(path), "error": str(e)})
            continue
        row = {"name": name, "kind": kind, "path": str(path), "description": hw.description or "",
               "hypothetical": hw.hypothetical}
        chip = hw if isinstance(hw, Chip) else hw.chip
        row["chip"] = chip.name
        row["count"] = 1 if isinstance(hw, Chip) else hw.count
        mm = chip.main_memory
        try:
            row["bf16_tflops"] = chip.peak_flops("bf16") / 1e12
        except KeyError:
            row["bf16_tflops"] = None
        row["memory_gb"] = mm.total_capacity_bytes(chip.cores) / 1e9
        row["memory_tb_s"] = mm.bandwidth_bytes_per_s / 1e12
        row["tdp_w"] = chip.tdp_w
        row["usd_per_hour"] = hw.usd_per_hour if isinstance(hw, System) else chip.price_usd_per_hour
        row["price_date"] = (hw.price_date if isinstance(hw, Chip) or hw.cloud_usd_per_s is not None
                             else hw.chip.price_date)
        row["price_source"] = hw.price_note() if isinstance(hw, System) else (
            System.single(hw).price_note() if hw.cloud_usd_per_s is not None else None)
        row["price_premium"] = hw.price_premium if isinstance(hw, System) else None
        row["instance"] = getattr(hw, "instance", None)
        row["calibration"] = chip.calibration
        row["efficiency_provenance"] = chip.efficiency_provenance
        row["chip_class"] = chip.chip_class
        rows.append(row)
    return rows


def resolve(name_or_path: str | Path) -> Path:
    """A catalog name or a file path -> the file's path (SpecError if neither)."""
    s = str(name_or_path)
    if not s.strip():  # Path('') is the working folder
        raise SpecError([Problem("an empty hardware name; give a catalog name (`llmsim hw list`) or a YAML file")])
    p = Path(s)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in s:
        if not p.exists():
            raise SpecError([Problem(f"no such hardware file: {s}")])
        if p.is_dir():
            raise SpecError([Problem(f"{s} is a folder; expected a YAML hardware file")])
        return p
    idx = _catalog_index()
    if s in idx:
        return idx[s][1]
    hint = difflib.get_close_matches(s, list(idx), n=3)
    dym = f"; did you mean {', '.join(hint)}?" if hint else ""
    raise SpecError([Problem(f"unknown hardware '{s}'{dym} (`llmsim hw list` shows the catalog; or give a path to a YAML file)")])


def standard_system_for(chip_name: str, chips_needed: int) -> str | None:
    """The smallest catalog system built from ``chip_name`` with at least ``chips_needed`` chips."""
    best = None
    for name, (kind, path) in _catalog_index().items():
        if kind != "system":
            continue
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            continue
        if not isinstance(data, dict) or data.get("chip") != chip_name:
            continue
        count = data.get("count", 0)
        key = (count, "instance" in data, name)  # smallest first; a generic system before a cloud instance
        if isinstance(count, int) and count >= chips_needed and (best is None or key < best):
            best = key
    return None if best is None else best[2]


# ---------------------------------------------------------------------------------------------
# overrides

def parse_overrides(overrides) -> list[tuple[str, object]]:
    """Normalize overrides: a dict, or a list of 'path=value' strings (values read as YAML scalars)."""
    if not overrides:
        return []
    if isinstance(overrides, dict):
        return list(overrides.items())
    out = []
    for item in overrides:
        if isinstance(item, tuple):
            out.append(item)
            continue
        if "=" not in item:
            raise SpecError([Problem(f"--set {item!r}: expected PATH=VALUE, e.g. memory.hbm.bandwidth=\"6 TB/s\"")])
        path, _, value = item.partition("=")
        path, value = path.strip(), value.strip()
        if not _segments(path):
            raise SpecError([Problem(f"--set {item!r}: empty path before '='; expected PATH=VALUE, e.g. "
                                     "memory.hbm.bandwidth=\"6 TB/s\"")])
        parsed = _override_value(path, value)
        if isinstance(parsed, str) and parsed.strip() != value.strip('"\''):
            parsed = value
        out.append((path, parsed))
    return out


def _override_value(path: str, value: str):
    """A --set value read as one YAML scalar or flow collection, within the YAML limits (a value
    that is not valid YAML stays the text it is)."""
    if not value:
        return ""
    try:
        return load_marked(value, f"--set {path}")[0].data
    except SpecError as e:
        if all(p.message.startswith("not valid YAML") for p in e.problems):
            return value
        raise


def _segments(path: str) -> list[str]:
    return [s for s in path.replace("[", ".").replace("]", "").split(".") if s]


def _entry(items: list, seg: str, path: str) -> int | None:
    """The index of the list entry ``seg`` names: by ``name`` first, then by ``kind`` when exactly
    one entry has that kind (an ambiguous kind is an error: name the entry instead)."""
    dicts = [(j, it) for j, it in enumerate(items) if isinstance(it, dict)]
    for j, it in dicts:
        if it.get("name") == seg:
            return j
    by_kind = [(j, it) for j, it in dicts if it.get("kind") == seg]
    if len(by_kind) > 1:
        names = ", ".join(str(it.get("name", j)) for j, it in by_kind)
        raise SpecError([Problem(f"--set {path}: '{seg}' is the kind of several entries ({names}) and the name of "
                                 "none; name the entry you mean")])
    return by_kind[0][0] if by_kind else None


def apply_override(data, path: str, value, file: str, schema_keys=None):
    """Set ``path`` in the YAML data tree; raises SpecError (with did-you-mean) for unknown paths."""
    segs = _segments(path)
    if not segs:
        raise SpecError([Problem("--set: empty path", file)])
    node = data
    for i, seg in enumerate(segs):
        last = i == len(segs) - 1
        where = ".".join(segs[: i + 1])
        if isinstance(node, dict):
            if last:
                if seg not in node and schema_keys is not None and i == 0 and seg not in schema_keys:
                    hint = difflib.get_close_matches(seg, list(schema_keys), n=1)
                    dym = f" (did you mean '{hint[0]}'?)" if hint else ""
                    raise SpecError([Problem(f"--set {path}: unknown field '{seg}'{dym}", file)])
                node[seg] = value
                return
            if seg not in node:
                if schema_keys is not None and i == 0 and seg in schema_keys:
                    node[seg] = {}
                else:
                    keys = list(node)
                    hint = difflib.get_close_matches(seg, keys, n=1)
                    dym = f" (did you mean '{hint[0]}'?)" if hint else ""
                    raise SpecError([Problem(f"--set {path}: '{where}' does not exist{dym}; "
                                             f"keys here: {', '.join(map(str, keys))}", file)])
            node = node[seg]
        elif isinstance(node, list):
            idx = None
            if seg.isdigit() and int(seg) < len(node):
                idx = int(seg)
            else:
                idx = _entry(node, seg, path)
            if idx is None:
                names = [str(it.get("name", it.get("kind"))) for it in node if isinstance(it, dict)]
                hint = difflib.get_close_matches(seg, names, n=1)
                dym = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise SpecError([Problem(f"--set {path}: no entry '{seg}' in {'.'.join(segs[:i]) or 'list'}{dym}; "
                                         f"entries: {', '.join(names)}", file)])
            if last:
                node[idx] = value
                return
            node = node[idx]
        else:
            raise SpecError([Problem(f"--set {path}: '{'.'.join(segs[:i])}' is a value, not a mapping", file)])


# ---------------------------------------------------------------------------------------------
# loading

def _read(path: Path) -> Marked:
    file = str(path)
    docs = read_yaml(path, "a YAML hardware description")
    if len(docs) > 1:
        raise SpecError([Problem("one hardware description per file, please (found several YAML documents)",
                                 file, *docs[1].where(()))])
    doc = docs[0]
    if not isinstance(doc.data, dict):
        raise SpecError([doc.problem((), f"expected a mapping with 'version', 'kind' and 'name'; got "
                                         f"{type(doc.data).__name__}")])
    return doc


#: Math every prediction runs, whatever the quantization: (what, peak keys that serve it, why)
_NEEDED_RATES = (
    ("fp32", ("fp32",), "softmax and normalization statistics run in fp32 (on the vector unit, or the "
                        "matrix unit where the vector unit lists no fp32)"),
    ("bf16", ("bf16", "fp16"), "activations are stored in bf16 or fp16 under every quantization scheme, "
                               "and wider dtypes never stand in for narrower ones"),
)


def _semantic_chip(v: dict, m: Marked) -> list:
    problems = []
    cores = v["cores"]
    prev = None
    names = set()
    for i, lvl in enumerate(v["memory"]):
        if lvl["name"] in names:
            problems.append(m.problem(("memory", i, "name"), f"memory level name '{lvl['name']}' is used twice"))
        names.add(lvl["name"])
        total = lvl["capacity"] * (cores if lvl.get("per") == "core" else 1)
        if prev is not None and lvl.get("kind") != "host" and total < prev[1]:
            problems.append(m.problem(("memory", i, "capacity"),
                                      f"level '{lvl['name']}' holds {total / 1e9:.4g} GB in all, less than the inner "
                                      f"level '{prev[0]}' ({prev[1] / 1e9:.4g} GB); levels go innermost first and "
                                      "outer levels are larger"))
        prev = (lvl["name"], total)
    problems += _semantic_calibration(v, m)
    kinds = [u["kind"] for u in v["compute"]]
    for k in set(kinds):
        if kinds.count(k) > 1:
            problems.append(m.problem(("compute",), f"compute unit kind '{k}' is listed twice; list each kind once"))
    listed = {k for u in v["compute"] if u["kind"] != "special" for k in u["peak"]}  # exp units run no GEMM or norm
    for need, keys, why in _NEEDED_RATES:
        if not listed & set(keys):
            problems.append(m.problem(("compute",), f"no compute unit lists a rate for {need} ({' or '.join(keys)}); "
                                                    f"the engine needs one: {why}"))
    for i, u in enumerate(v["compute"]):
        problems += _semantic_clock(v, u, i, m)
        for dt, sp in (u.get("sparse_peak") or {}).items():
            dense = u["peak"].get(dt)
            if dense is not None and sp < dense:
                problems.append(m.problem(("compute", i, "sparse_peak", dt),
                                          "sparse peak is below the dense peak; 'peak' holds dense figures"))
    return problems


def _semantic_clock(v: dict, u: dict, i: int, m: Marked) -> list:
    """A unit's ``sustained_clock`` (docs/cost-model.md, Clocks under the power limit): matrix units only, beside
    the chip's ``clock`` (the boost clock) and no higher than it."""
    f = u.get("sustained_clock")
    if f is None:
        if "sustained_clock_power" in u:
            return [m.problem(("compute", i, "sustained_clock_power"), "sustained_clock_power is the power limit a "
                              "sustained_clock was read at; give the sustained_clock beside it")]
        return []
    idle = (v.get("power") or {}).get("idle") or 0.0
    pw = u.get("sustained_clock_power")
    if pw is not None and pw <= idle:
        return [m.problem(("compute", i, "sustained_clock_power"), f"sustained_clock_power {pw:g} W is not above the "
                          f"chip's idle power {idle:g} W; it is the power limit the sustained clock was read at")]
    tdp = (v.get("power") or {}).get("tdp")
    if pw is not None and (not tdp or tdp <= idle):
        return [m.problem(("compute", i, "sustained_clock_power"), "sustained_clock_power needs the chip's power.tdp "
                          "above its idle power (the power limit the GEMM rate then follows)")]
    where = ("compute", i, "sustained_clock")
    if u["kind"] != "matrix":
        return [m.problem(where, f"sustained_clock is a matrix unit's (the clock its GEMMs settle at under the power "
                                 f"limit); this unit is '{u['kind']}'")]
    if v.get("clock") is None:
        return [m.problem(where, "sustained_clock needs the chip's 'clock' (the boost clock, e.g. 1.755 GHz) beside it")]
    if f > v["clock"]:
        return [m.problem(where, f"sustained_clock {f / 1e9:.4g} GHz is above the chip's clock {v['clock'] / 1e9:.4g} "
                                 "GHz; 'clock' is the boost clock, the highest a GEMM runs at")]
    return []


def _key_fields(v: dict) -> tuple[int, int]:
    """Indexes of the GEMM unit (matrix, else vector, else first) and the main memory (outermost non-host)
    in the validated data, as Chip.matrix_unit() and Chip.main_memory pick them."""
    kinds = [u["kind"] for u in v["compute"]]
    gemm = kinds.index("matrix") if "matrix" in kinds else kinds.index("vector") if "vector" in kinds else 0
    levels = v["memory"]
    main = next((i for i in range(len(levels) - 1, -1, -1) if levels[i].get("kind") != "host"), len(levels) - 1)
    return gemm, main


def _semantic_calibration(v: dict, m: Marked) -> list:
    """A declared `calibration` must be true of the file: class-default needs a class; measured or published
    needs an efficiency figure of the file's own on the GEMM unit or the main memory."""
    cal = v.get("calibration")
    if cal is None:
        return []
    if cal == "class-default" and "class" not in v:
        return [m.problem(("calibration",), "'calibration: class-default' needs 'class' beside it (one of: "
                                            f"{', '.join(chip_classes())}), whose defaults fill the efficiencies")]
    gemm, main = _key_fields(v)
    if cal in ("measured", "published") and "efficiency" not in v["compute"][gemm] \
            and "efficiency" not in v["memory"][main]:
        return [m.problem(("calibration",), f"'calibration: {cal}' but the file gives no efficiency for its GEMM "
                                            f"unit (compute.{v['compute'][gemm]['kind']}.efficiency) or its main "
                                            f"memory (memory.{v['memory'][main]['name']}.efficiency); give the "
                                            "figures, or declare class-default with a class")]
    return []


def _fill_from_class(v: dict, compute: tuple, memory: tuple) -> tuple[tuple, tuple]:
    """The GEMM unit's and main memory's efficiency from the chip's class wherever the file gives none, and
    the class's special-function unit (results per clock per core x cores x clock) where the file lists none."""
    cls = chip_classes().get(v.get("class"))
    if cls is None:
        return compute, memory
    gemm, main = _key_fields(v)
    if compute[gemm].efficiency is None:
        u = compute[gemm]
        compute = compute[:gemm] + (replace(u, efficiency=cls.matrix_efficiency,
                                            efficiency_source=cls.source_for("matrix")),) + compute[gemm + 1:]
    if compute[gemm].epilogue_overlap is None:
        u = compute[gemm]
        compute = compute[:gemm] + (replace(u, epilogue_overlap=cls.epilogue_overlap,
                                            epilogue_source=cls.source_for("epilogue")),) + compute[gemm + 1:]
    if cls.special_per_core_clock and v.get("clock") and not any(u.kind == "special" for u in compute):
        compute = compute + (ComputeUnit(kind="special", peak={"fp32": cls.special_per_core_clock * v["cores"]
                                                               * v["clock"]},
                                         efficiency_source=cls.source_for("special"),
                                         overlaps_matrix=cls.special_overlaps_matrix),)
    if memory[main].efficiency is None:
        lv = memory[main]
        filled = MemoryLevel(lv.name, lv.kind, lv.capacity_bytes, lv.per, lv.bandwidth_bytes_per_s, lv.latency_s,
                             cls.memory_efficiency, cls.source_for("memory") + (
                                 f"; efficiency_by_kind: {lv.efficiency_source}" if lv.efficiency_source else ""),
                             lv.energy_per_byte_j, lv.efficiency_by_kind, lv.efficiency_by_pattern,
                             lv.efficiency_by_pattern_source)
        memory = memory[:main] + (filled,) + memory[main + 1:]
    lv = memory[main]
    missing = {p: f for p, f in cls.pattern_efficiency.items() if p not in lv.efficiency_by_pattern}
    if missing:  # each access pattern the file gives no fraction for: the class default
        src = "; ".join(s for s in (lv.efficiency_by_pattern_source, cls.source_for("pattern")) if s)
        memory = memory[:main] + (replace(lv, efficiency_by_pattern={**lv.efficiency_by_pattern, **missing},
                                          efficiency_by_pattern_source=src),) + memory[main + 1:]
    return compute, memory


def _build_chip(v: dict, path: Path) -> Chip:
    compute = tuple(
        ComputeUnit(kind=u["kind"], peak=dict(u["peak"]), sparse_peak=dict(u.get("sparse_peak") or {}),
                    tile=tuple(u["tile"]) if u.get("tile") else None, efficiency=u.get("efficiency"),
                    efficiency_source=u.get("efficiency_source"), overlaps_matrix=u.get("overlaps_matrix", False),
                    epilogue_overlap=u.get("epilogue_overlap"), epilogue_source=u.get("epilogue_source"),
                    gemm_fixed_time_s=u.get("gemm_fixed_time", 0.0),
                    gemm_fixed_time_source=u.get("gemm_fixed_time_source"),
                    mma_sync_share=u.get("mma_sync_share", 1.0), mma_sync_source=u.get("mma_sync_source"),
                    sustained_clock_hz=u.get("sustained_clock"), sustained_clock_source=u.get("sustained_clock_source"),
                    sustained_clock_power_w=u.get("sustained_clock_power"),
                    efficiency_by_dtype=dict(u.get("efficiency_by_dtype") or {}),
                    efficiency_by_dtype_source=u.get("efficiency_by_dtype_source"))
        for u in v["compute"])
    memory = tuple(
        MemoryLevel(name=lv["name"], kind=lv.get("kind", "dram"), capacity_bytes=lv["capacity"],
                    per=lv.get("per", "chip"), bandwidth_bytes_per_s=lv["bandwidth"],
                    latency_s=lv.get("latency", 0.0), efficiency=lv.get("efficiency"),
                    efficiency_source=lv.get("efficiency_source"), energy_per_byte_j=lv.get("energy_per_byte"),
                    efficiency_by_kind=dict(lv.get("efficiency_by_kind") or {}),
                    efficiency_by_pattern=dict(lv.get("efficiency_by_pattern") or {}),
                    efficiency_by_pattern_source=lv.get("efficiency_by_pattern_source"))
        for lv in v["memory"])
    compute, memory = _fill_from_class(v, compute, memory)
    power = v.get("power") or {}
    price = v.get("price") or {}
    link = lambda d: None if not d else Link(d["bandwidth"], d.get("type"), d.get("latency", 0.0))  # noqa: E731
    return Chip(
        name=v["name"], source=v["source"], cores=v["cores"], compute=compute, memory=memory,
        launch_overhead_s=v.get("launch_overhead", 0.0), vendor=v.get("vendor"), description=v.get("description"),
        architecture=v.get("architecture"),
        hypothetical=v.get("hypothetical", False), process_node=v.get("process_node"),
        die_area_mm2=v.get("die_area"), clock_hz=v.get("clock"), year=v.get("year"),
        tdp_w=power.get("tdp"), idle_w=power.get("idle"), energy_per_flop_j=dict(power.get("energy_per_flop") or {}),
        list_price_usd=price.get("list"), cloud_usd_per_s=price.get("cloud"),
        interconnect=link(v.get("interconnect")), host_link=link(v.get("host_link")), path=str(path),
        chip_class=v.get("class"), declared_calibration=v.get("calibration"), price_source=price.get("cloud_source"),
        price_date=price.get("cloud_date"), **_fixed_time(v),
    )


def _fixed_time(v: dict) -> dict:
    """The chip's GPU-side per-kernel fixed time and its source: the file's, else its class's default
    (a source that starts with "class default"), else 0 s with no source."""
    if "kernel_fixed_time" in v:
        return {"kernel_fixed_time_s": v["kernel_fixed_time"], "kernel_fixed_time_source": v.get("kernel_fixed_time_source")}
    cls = chip_classes().get(v.get("class"))
    if cls is None or cls.kernel_fixed_time_s is None:
        return {}
    return {"kernel_fixed_time_s": cls.kernel_fixed_time_s, "kernel_fixed_time_source": cls.source_for("fixed")}


#: parsed hardware by (file, overrides, expected kind) -> (file signatures, object): a file is read and
#: validated once per process while it stays unchanged (its and its chip file's mtime and size)
_LOADED: dict = {}
_LOADED_MAX = 128


def _signature(path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (str(path), st.st_mtime_ns, st.st_size)


def _load(path: Path, overrides, expect: str | None):
    try:
        key = (str(path), repr(parse_overrides(overrides)), expect)
    except SpecError:
        key = None  # a bad override: let the full load report it with its location
    hit = _LOADED.get(key) if key is not None else None
    if hit is not None and all(_signature(p) == sig for p, sig in hit[0]):
        return hit[1]
    obj = _load_uncached(path, overrides, expect)
    if key is not None:
        files = {str(path), obj.path} | ({obj.chip.path} if isinstance(obj, System) else set())
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.clear()
        _LOADED[key] = (tuple((f, _signature(f)) for f in files if f), obj)
    return obj


def _kind_problems(doc, kind) -> list:
    """A file whose ``kind`` is missing or not chip/system: that problem, with the nearest kind where the value is
    a misspelling of one (``stak``: did you mean 'stack'?), then the file's problems against that kind's schema
    (a chip's when ``kind`` is missing); none but the first when the value is like no kind (its other keys would
    only be measured against a guess)."""
    from hwmodels.stack_schema import STACK

    schemas = {"chip": CHIP, "system": SYSTEM, "stack": STACK}
    if "kind" not in doc.data:
        first = doc.problem((), "missing 'kind'; expected 'kind: chip', 'kind: system' or 'kind: stack'")
        guess = "chip"
    else:
        hint = difflib.get_close_matches(str(kind), list(schemas), n=1) if isinstance(kind, str) else []
        guess = hint[0] if hint else None
        first = doc.problem(("kind",), f"'kind' must be chip, system or stack; got {kind!r}"
                            + (f" (did you mean '{guess}'?)" if guess else ""))
    if guess is None:
        return [first]
    _, problems = validate(doc, schemas[guess])
    return [first] + [p for p in problems if p.path != "kind" and not p.message.startswith("missing required key 'kind'")]


def _load_uncached(path: Path, overrides, expect: str | None):
    doc = _read(path)
    data = doc.data
    kind = data.get("kind")
    if kind not in ("chip", "system"):
        raise SpecError(_kind_problems(doc, kind))
    ovr = parse_overrides(overrides)
    chip_ovr, applied = [], []
    for p, val in ovr:
        segs = _segments(p)
        if kind == "chip":
            while len(segs) > 1 and segs[0] == "chip":  # chip.X on a chip file is X (as on a system)
                segs = segs[1:]
            p = ".".join(segs)
        if segs == ["kind"] and val != kind:
            raise SpecError([Problem(f"--set kind={val}: a {kind} file stays a {kind} (give a {val} file instead)",
                                     str(path))])
        if kind == "system" and (segs[0] == "chip" and len(segs) > 1 or segs[0] not in SYSTEM.fields):
            chip_ovr.append((".".join(segs[1:]) if segs[0] == "chip" else p, val))
        else:
            apply_override(data, p, val, str(path), schema_keys=(CHIP if kind == "chip" else SYSTEM).fields)
            applied.append((p, val))
    _mark_price_override(data, applied)
    schema = CHIP if kind == "chip" else SYSTEM
    v, problems = validate(doc, schema)
    if kind == "chip":
        if v is not None:
            problems += _semantic_chip(v, doc)
        if problems:
            raise SpecError(problems)
        obj = _build_chip(v, path)
    else:
        if v is None or problems:
            raise SpecError(problems)
        chip_ref = v["chip"]
        rel = path.parent / chip_ref
        chip_path = rel if (chip_ref.endswith((".yaml", ".yml")) and rel.exists()) else None
        try:
            chip = _load(chip_path or resolve(chip_ref), chip_ovr, "chip")
        except SpecError as e:
            if chip_path is None and len(e.problems) == 1 and e.problems[0].file is None:
                raise SpecError([doc.problem(("chip",), e.problems[0].message)])
            raise
        tiers = tuple(
            Tier(name=t["name"], fanout=t["fanout"], topology=t["topology"], bandwidth_bytes_per_s=t["bandwidth"],
                 latency_s=t["latency"], in_network_reduction=t.get("in_network_reduction", False),
                 efficiency=t.get("efficiency", 1.0), efficiency_source=t.get("efficiency_source"),
                 dims=tuple(t["dims"]) if t.get("dims") else None, type=t.get("type"))
            for t in v.get("tiers") or ())
        total = 1
        for t in tiers:
            total *= t.fanout
        if v["count"] > 1 and total < v["count"]:
            raise SpecError([doc.problem(("tiers",), f"the tiers' fan-outs multiply to {total}, fewer than count "
                                                     f"{v['count']}; every chip must be reachable")])
        for i, t in enumerate(tiers):
            if t.topology in ("torus", "mesh") and t.dims:
                prod = 1
                for d in t.dims:
                    prod *= d
                if prod != t.fanout:
                    raise SpecError([doc.problem(("tiers", i, "dims"), f"dims multiply to {prod}, not the fanout {t.fanout}")])
        price = v.get("price") or {}
        ref = chip if not chip_ovr else _load(chip_path or resolve(chip_ref), None, "chip")
        cloud, source, date, premium = _system_price(v, chip, ref.cloud_usd_per_s)
        obj = System(name=v["name"], source=v["source"], chip=chip, count=v["count"], tiers=tiers,
                     description=v.get("description"), hypothetical=v.get("hypothetical", False),
                     cloud_usd_per_s=cloud, list_price_usd=price.get("list"), price_source=source,
                     price_date=date, price_premium=premium, instance=v.get("instance"),
                     power_overhead_w=(v.get("power") or {}).get("overhead", 0.0), path=str(path))
    if expect == "chip" and kind != "chip":
        raise SpecError([doc.problem(("kind",), f"expected a chip here; this file describes a {kind}")])
    return obj


def _mark_price_override(data: dict, ovr) -> None:
    """A cloud price given as an override is labelled as such (not with the file's source and date)."""
    for p, _ in ovr:
        segs = _segments(p)
        if segs[-2:] == ["price", "cloud"] and len(segs) == 2 and isinstance(data.get("price"), dict):
            given = {".".join(_segments(q)) for q, _ in ovr}
            if "price.cloud_source" not in given:
                data["price"]["cloud_source"] = "given on the command line (--price or --set price.cloud)"
            if "price.cloud_date" not in given:
                data["price"].pop("cloud_date", None)


def _system_price(v: dict, chip: Chip, ref_chip_usd_per_s: float | None):
    """(own cloud USD/s or None, source, date, premium) of a system: the pricing rule.

    A system's price is its own (a cloud instance's on-demand price) or count x chip price x (1 + premium),
    premium 0 unless the file gives one with its source. With an own price the premium is derived against
    the catalog chip's price, so when the chip's price is overridden (--price) the system keeps its
    premium over the new chip price rather than its old absolute price.
    """
    price = v.get("price") or {}
    own, count = price.get("cloud"), v["count"]
    chip_usd = chip.cloud_usd_per_s
    if "premium" in price:
        premium = price["premium"]
    elif own is not None and ref_chip_usd_per_s:
        premium = own / (count * ref_chip_usd_per_s) - 1.0
    else:
        premium = 0.0
    overridden = chip_usd is not None and chip_usd != ref_chip_usd_per_s
    if own is not None and not overridden:
        return own, price.get("cloud_source"), price.get("cloud_date"), premium
    if chip_usd is None:
        return own, price.get("cloud_source") if own is not None else None, price.get("cloud_date"), premium
    if premium == 0.0 and own is None:
        return None, None, None, 0.0  # count x chip price, read live (sweeps of chip.price.cloud follow)
    src = (f"{count} x {chip.name} at {chip_usd * 3600:.4g} USD/h ({chip.price_source or 'no source given'}) "
           f"x (1 {premium:+.4g} system premium" + (f": {price['premium_source']})" if "premium_source" in price
                                                    else ")"))
    return count * chip_usd * (1.0 + premium), src, chip.price_date, premium


def load_hardware(name_or_path, overrides=None) -> Chip | System:
    """Load a chip or a system by catalog name or path, applying overrides."""
    return _load(resolve(name_or_path), overrides, None)


def load_chip(name_or_path, overrides=None) -> Chip:
    """Load a chip (SpecError if the file describes a system)."""
    return _load(resolve(name_or_path), overrides, "chip")


def load_system(name_or_path, overrides=None) -> System:
    """Load a system; a chip file gives a system of one chip."""
    hw = load_hardware(name_or_path, overrides)
    return System.single(hw) if isinstance(hw, Chip) else hw


def _is_stack_file(p) -> bool:
    """A YAML file whose top-level ``kind`` is ``stack`` (a serving-stack profile, hwmodels/stack.py)."""
    path = Path(str(p))
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    # a top-level 'kind: stack' line (not a full parse: the hardware loader reports a bad file's problems)
    return re.search(r"^kind:\s*['\"]?stack['\"]?\s*(#.*)?$", text, re.M) is not None


def check_files(paths) -> list[tuple[str, list]]:
    """Validate files; returns (path, problems) for each (empty list: valid)."""
    from hwmodels.stack import load_stack

    out = []
    for p in paths:
        try:
            if _is_stack_file(p):
                load_stack(p)
                out.append((str(p), []))
                continue
            _load(resolve(p), None, None)
            out.append((str(p), []))
        except SpecError as e:
            out.append((str(p), e.problems))
    return out


__all__ = ["load_chip", "load_system", "load_hardware", "list_hardware", "check_files", "resolve",
           "standard_system_for", "parse_overrides", "dotted"]
