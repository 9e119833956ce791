"""`llmsim hw list|show`, `llmsim check FILE...`, `llmsim schema`: the hardware catalog and format."""

from __future__ import annotations

import dataclasses
import json
import sys

from hwmodels.chip import Chip, System
from hwmodels.loader import check_files, list_hardware, load_hardware
from hwmodels.jsonschema import json_schema
from llmsim.commands._common import add_set_option, print_json


def register(sub) -> None:
    hw = sub.add_parser("hw", help="list and show hardware (chips and systems)")
    hsub = hw.add_subparsers(dest="hw_command", metavar="ACTION")
    p = hsub.add_parser("list", help="the catalog of chips and systems")
    p.add_argument("--json", action="store_true", help="JSON list of objects (name, kind, ...)")
    p.set_defaults(func=cmd_list)
    p = hsub.add_parser("show", help="the resolved spec of one chip or system, in SI units")
    p.add_argument("name", metavar="NAME_OR_FILE", help="catalog name (llmsim hw list) or hardware YAML path")
    p.add_argument("--json", action="store_true", help="print the resolved spec as JSON (SI units)")
    add_set_option(p)
    p.set_defaults(func=cmd_show)
    hw.set_defaults(func=lambda a: (hw.print_help(), 0)[1])

    p = sub.add_parser("check", help="validate hardware and stack files (exit 0 when valid, 2 when not)")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="hardware YAML files (chips or systems) or serving-stack files (kind: stack) to check "
                        "against the format (llmsim schema)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("schema", help="JSON Schema of the hardware format (for editors)")
    p.set_defaults(func=cmd_schema)


def _fmt(v, scale=1.0, digits=3):
    from hwmodels.format import _sig

    if v is None:
        return "-"
    x = v / scale
    return f"{x:,.0f}" if abs(x) >= 1000 else _sig(x, digits)


def cmd_list(args) -> int:
    rows = list_hardware()
    if args.json:
        print_json(rows)
        return 0
    print(f"{'name':<22}{'kind':<9}{'chips':>5} {'bf16 TFLOP/s':>12} {'mem GB':>7} {'mem TB/s':>8} {'USD/h':>8} "
          f"{'price date':<11} {'calibration':<13}")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<22}{r['kind']:<7} INVALID: run `llmsim check {r['path']}`")
            continue
        kind = "instance" if r.get("instance") else r["kind"]
        print(f"{r['name'][:21]:<22}{kind:<9}{r['count']:>5} {_fmt(r['bf16_tflops']):>12} "
              f"{_fmt(r['memory_gb']):>7} {_fmt(r['memory_tb_s'], digits=3):>8} {_fmt(r['usd_per_hour'], digits=3):>8} "
              f"{r.get('price_date') or '-':<11} {r['calibration']:<13}")
    print(f"\n{len(rows)} entries; per chip: dense bf16 peak, main memory capacity and bandwidth; "
          "USD/h for the whole entry (price date: when it was read; docs/hardware-format.md, Prices); kind "
          "instance: a cloud instance you can order; calibration: what the efficiency figures rest on (measured, published, "
          "class-default: docs/hardware-format.md).")
    return 0


def _to_dict(obj):
    d = dataclasses.asdict(obj)
    d = {"kind": "chip" if isinstance(obj, Chip) else "system", **d}
    chip = obj if isinstance(obj, Chip) else obj.chip
    d["calibration"] = chip.calibration
    d["efficiency_provenance"] = chip.efficiency_provenance
    return d


def cmd_show(args) -> int:
    hw = load_hardware(args.name, args.overrides)
    d = _to_dict(hw)
    if args.json:
        print_json(d)
        return 0
    chip = hw if isinstance(hw, Chip) else hw.chip
    print(f"{hw.name} ({d['kind']}){' [hypothetical]' if hw.hypothetical else ''}")
    if hw.description:
        print(f"  {hw.description}")
    for line in _spec_lines(hw, chip):
        print(line)
    print("  sources:")
    for s in hw.source:
        print(f"    - {s}")
    return 0


def _spec_lines(hw, chip) -> list[str]:
    """The resolved spec as text lines, every quantity through the one formatter (hwmodels.format)."""
    from hwmodels.format import fmt_bandwidth, fmt_bytes, fmt_compute, fmt_power, fmt_si, fmt_time

    out = []
    if not isinstance(hw, Chip):
        out.append(f"  {hw.count} x {chip.name}")
        for t in hw.tiers:
            out.append(f"  tier {t.name}: fanout {t.fanout}, {t.topology}, {fmt_bandwidth(t.bandwidth_bytes_per_s)} "
                       f"per direction, latency {fmt_time(t.latency_s)}"
                       + (", in-network reduction" if t.in_network_reduction else ""))
        if hw.instance:
            out.append(f"  cloud instance: {hw.instance}")
        out.append(f"  price: {hw.price_note() or 'none (give --price USD/h)'}")
    out.append(f"  chip {chip.name}: {chip.cores} cores" + (f", {fmt_si(chip.clock_hz, 'Hz')}" if chip.clock_hz else ""))
    prov = chip.efficiency_provenance
    out.append(f"  calibration: {chip.calibration} (GEMM unit: {prov['matrix']}, main memory: {prov['memory']})"
               + (f"; class {chip.chip_class}" if chip.chip_class else ""))
    for u in chip.compute:
        peaks = ", ".join(f"{k} {fmt_compute(v, k)}" for k, v in u.peak.items())
        by_dtype = ", ".join(f"{k} {v}" for k, v in (u.efficiency_by_dtype or {}).items())
        out.append(f"    {u.kind}: {peaks}" + (f"; efficiency {u.efficiency}" if u.efficiency else "")
                   + (f" ({by_dtype})" if by_dtype else "")
                   + (f"; sustained clock {fmt_si(u.sustained_clock_hz, 'Hz')} (boost {fmt_si(chip.clock_hz, 'Hz')}"
                      + (f", read at {fmt_power(u.sustained_clock_power_w)})" if u.sustained_clock_power_w else ")")
                      if u.sustained_clock_hz else "")
                   + (f"; mma.sync at {u.mma_sync_share} of it" if u.mma_sync_share != 1.0 else ""))
    for m in chip.memory:
        per = " per core" if m.per == "core" else ""
        out.append(f"    {m.name} ({m.kind}): {fmt_bytes(m.capacity_bytes)}{per}, {fmt_bandwidth(m.bandwidth_bytes_per_s)}"
                   + (f"; efficiency {m.efficiency}" if m.efficiency else "")
                   + (f"; latency {fmt_time(m.latency_s)}" if m.latency_s else "")
                   + (f"; {fmt_si(m.energy_per_byte_j, 'J/B')}" if m.energy_per_byte_j else ""))
    if chip.tdp_w:
        per_flop = ", ".join(f"{k} {fmt_si(v, 'J/FLOP')}" for k, v in (chip.energy_per_flop_j or {}).items())
        out.append(f"    power: TDP {fmt_power(chip.tdp_w)}" + (f", idle {fmt_power(chip.idle_w)}" if chip.idle_w else "")
                   + (f"; energy per FLOP {per_flop}" if per_flop else ""))
    if chip.price_usd_per_hour is not None:
        out.append(f"    price: {System.single(chip).price_note()}")
    return out


def cmd_check(args) -> int:
    bad = 0
    for path, problems in check_files(args.files):
        if problems:
            bad += 1
            for p in problems:
                print(f"error: {p}", file=sys.stderr)
        else:
            print(f"ok: {path}")
    return 2 if bad else 0


def cmd_schema(args) -> int:
    json.dump(json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
