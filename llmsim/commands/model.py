"""`llmsim model list|show`: the shipped model configs, their parameter counts and KV-cache sizes."""

from __future__ import annotations

import os
import sys
import textwrap

from llmsim.commands._common import print_json
from workloads.model import CATALOG_DIR, list_models, load_model

WIDTH = 80


def register(sub) -> None:
    m = sub.add_parser("model", help="list and show model architectures (Hugging Face config.json)")
    msub = m.add_subparsers(dest="model_command", metavar="ACTION")
    p = msub.add_parser("list", help="the catalog of model configs")
    p.add_argument("--json", action="store_true", help="JSON list of objects (name, family, params_total, ...)")
    p.set_defaults(func=cmd_list)
    p = msub.add_parser("show", help="parameter counts, shapes and KV bytes per token of one model")
    p.add_argument("name", metavar="NAME_OR_CONFIG", help="a catalog name or a path to a config.json")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)
    m.set_defaults(func=lambda a: (m.print_help(), 0)[1])


def _b(n: float) -> str:
    """Parameters in billions (millions below 1 B)."""
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def cmd_list(args) -> int:
    rows = []
    for name in list_models():
        s = load_model(name)
        rows.append({"name": name, "family": s.family, "params_total": s.params_total,
                     "params_active": s.params_active, "layers": s.layers, "attention": s.attention,
                     "moe": s.is_moe, "max_position": s.max_position})
    if args.json:
        print_json(rows)
        return 0
    print(f"{'name':<18} {'family':<12}{'params':>9}{'active':>9}{'layers':>7}  {'attn':<5}{'context':>8}")
    for r in rows:
        print(f"{r['name'][:18]:<18} {r['family'][:12]:<12}{_b(r['params_total']):>9}{_b(r['params_active']):>9}"
              f"{r['layers']:>7}  {r['attention']:<5}{r['max_position']:>8}")
    print(f"\n{len(rows)} models; active = parameters one token touches (MoE: top-k experts).")
    return 0


def _kb(x: float) -> str:
    from hwmodels.format import fmt_bytes

    return fmt_bytes(x)


def _fit(label: str, text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=f"  {label:<11} ", subsequent_indent=" " * 14) or [f"  {label}"]


def _source(path: str) -> str:
    if path and os.path.dirname(os.path.abspath(path)) == str(CATALOG_DIR):
        return f"catalog ({os.path.basename(path)})"
    room = WIDTH - 14
    return path if len(path) <= room else "..." + path[-(room - 3):]


def cmd_show(args) -> int:
    s = load_model(args.name)
    for w in s.warnings:
        print(f"warning: {w}", file=sys.stderr)
    d = s.summary()
    if args.json:
        print_json(d)
        return 0
    lines = [textwrap.shorten(f"{s.name} ({s.family}, {s.architecture})", WIDTH)]
    lines.append(f"  {'source':<11} {_source(s.source)}")
    mtp = f" (excluding {s.mtp_layers} MTP module)" if s.mtp_layers else ""
    lines += _fit("parameters", f"{_b(s.params_total)} total, {_b(s.params_active)} active per token{mtp}")
    kinds = ", ".join(f"{k.count} x {k.tag}" + (f" (window {k.window})" if k.window else "")
                      + (" (MoE)" if k.moe else "") for k in s.layer_kinds)
    lines += _fit("layers", f"{s.layers}: {kinds}")
    lines += _fit("widths", f"hidden {s.hidden}, MLP {s.intermediate}"
                  f"{' gated' if s.mlp_gated else ''} {s.activation}, vocab {s.vocab}, {s.norm}"
                  f"{', tied embeddings' if s.tied_embeddings else ''}"
                  f"{', parallel attention/MLP' if s.parallel_block else ''}")
    if s.attention == "mla":
        att = (f"mla: {s.heads} heads, q_lora {s.q_lora_rank or '-'}, kv_lora {s.kv_lora_rank}, "
               f"qk {s.qk_nope_head_dim}+{s.qk_rope_head_dim} (rope), v {s.v_head_dim}")
    else:
        att = f"{s.attention}: {s.heads} query heads, {s.kv_heads} KV heads, head dim {s.head_dim}"
    lines += _fit("attention", att)
    lines += _fit("position", f"{s.position}, max {s.max_position} tokens")
    if s.is_moe:
        moe = (f"{s.num_experts} experts, top {s.experts_per_token}, width {s.moe_intermediate}"
               + (f", {s.shared_experts} shared (width {s.shared_intermediate})" if s.shared_intermediate else "")
               + f"; {s.moe_layers} MoE + {s.dense_layers} dense layers")
        lines += _fit("experts", moe)
    if s.checkpoint_quant is not None:
        cq = s.checkpoint_quant
        lines += _fit("checkpoint", f"{cq.name} (quantization_config"
                      + (f": weight blocks {cq.weight_block[0]}x{cq.weight_block[1]}" if cq.weight_block else "")
                      + "); --quant fp8 runs it so")
    kv = ", ".join(f"{dt} {_kb(v)}" for dt, v in d["kv_bytes_per_token"].items())
    lines += _fit("KV cache", f"per token, all layers: {kv}")
    pc = ", ".join(f"{k} {_b(v)}" for k, v in s.param_counts().items() if v)
    lines += _fit("breakdown", pc)
    print("\n".join(lines))
    return 0
