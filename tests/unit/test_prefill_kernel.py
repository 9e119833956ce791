"""The prefill (flash) attention kernel of a stack (kernels.prefill_attention, hwmodels.stack.PrefillKernel)
priced by sim.cost: CTA tiles, pipeline fill, softmax overlap, non-persistent Q/O waits, waves. Numbers
checkable by hand on the toy chip (100 cores; per core: matrix 1 TFLOP/s, vector 0.1 TFLOP/s, and here a
special unit of 0.01 T exp/s)."""

from dataclasses import replace
from pathlib import Path

import pytest

from hwmodels.errors import SpecError
from hwmodels.loader import load_chip
from hwmodels.stack import PrefillKernel, load_stack
from sim.cost import CostModel, CostOptions
from sim.ops import row_to_op

TOY = Path(__file__).parents[1] / "data" / "toy-chip.yaml"
FA = PrefillKernel(tiles=((256, 128, 128),), fill_blocks=1, softmax_hidden=0.5, persistent=True)


def _toy_sfu(tmp_path, overlaps=True, architecture=None) -> str:
    """The toy chip plus a special-function unit of 1 T exp/s (0.01 T/s per core), and an architecture where given."""
    name = "toy-sfu" + (f"-{architecture}" if architecture else "")
    arch = f"\narchitecture: {architecture}" if architecture else ""
    src = TOY.read_text().replace("name: toy-chip", f"name: {name}{arch}").replace(
        "  - kind: vector\n",
        f"  - kind: special\n    peak: {{fp32: 1 TFLOP/s}}\n    overlaps_matrix: {str(overlaps).lower()}\n"
        "  - kind: vector\n")
    p = tmp_path / f"{name}.yaml"
    p.write_text(src)
    return str(p)


def _op(seqlen=1024, heads=2, d=64, causal=False):
    return row_to_op({"op": "attention", "dtype": "bf16", "phase": "prefill", "batch": 1, "heads": heads,
                      "kv_heads": heads, "head_dim": d, "seqlen_q": seqlen, "seqlen_kv": seqlen, "causal": causal,
                      "kernel": "flash"})


def _compute(chip, op, pk, softmax="serial"):
    return CostModel(load_chip(chip), CostOptions(softmax=softmax, prefill_kernel=pk)).op_cost(op).compute_s


def test_a_cta_walks_its_tiles_with_the_softmax_partly_hidden_plus_one_fill_tile_by_hand(tmp_path):
    """1024 tokens, 2 heads, d64: 8 query blocks x 2 heads = 16 CTAs, one wave on 16 of the 100 cores.
    One 128 x 128 tile on one core: QK^T and PV 2 x 2 x 16384 x 64 = 4.194 MFLOP at 1 TFLOP/s = 4.194 us;
    softmax 16384 exps at 0.01 T/s = 1.638 us plus 4 x 16384 other FLOPs at 0.1 TFLOP/s = 0.655 us:
    2.294 us, of which 0.5 x 4.194 runs under the matrix work: a tile takes 4.194 + 0.197 = 4.391 us.
    A CTA walks 8 tiles and adds one tile at the serial rate (6.488 us): 41.617 us."""
    chip = _toy_sfu(tmp_path)
    tile_mat, tile_soft = 2 * 2 * 16384 * 64 / 1e12, 16384 / 1e10 + 4 * 16384 / 1e11
    want = 8 * (tile_mat + max(0.0, tile_soft - 0.5 * tile_mat)) + (tile_mat + tile_soft)
    assert want == pytest.approx(41.617e-6, rel=1e-4)
    assert _compute(chip, _op(), FA) == pytest.approx(want)
    # no hidden share, no fill: the two take turns on every tile
    assert _compute(chip, _op(), replace(FA, fill_blocks=0, softmax_hidden=0)) == pytest.approx(8 * (tile_mat + tile_soft))
    # a special unit that cannot run under the matrix work hides nothing
    assert _compute(_toy_sfu(tmp_path, overlaps=False), _op(), FA) == pytest.approx(9 * (tile_mat + tile_soft))


def test_padding_to_whole_tiles_and_waves_by_hand(tmp_path):
    """1000 tokens pad to 8 x 128 query rows and 8 x 128 keys: the same CTAs and tiles as 1024 tokens.
    200 heads: 1600 CTAs over 100 cores = 16 full waves, each one CTA's time."""
    chip = _toy_sfu(tmp_path)
    assert _compute(chip, _op(seqlen=1000), FA) == pytest.approx(_compute(chip, _op(seqlen=1024), FA))
    one = _compute(chip, _op(heads=2), FA)
    assert _compute(chip, _op(heads=200), FA) == pytest.approx(16 * one)
    assert _compute(chip, _op(heads=202), FA) == pytest.approx(17 * one)  # 1616 CTAs: a 17th, nearly empty wave


def test_tiles_follow_head_dim_and_causality():
    pk = PrefillKernel(tiles=((64, 192, 128), (128, 128, 176), (256, 128, 80)))
    assert pk.tile(64) == (192, 128) and pk.tile(96) == (128, 176) and pk.tile(128) == (128, 176)
    assert pk.tile(256) == (128, 80) and pk.tile(512) == (128, 80)  # above every bound: the last row
    assert pk.tile(128, causal=True) == (128, 176)  # no causal rows: the same tiles
    pk = replace(pk, causal_tiles=((128, 128, 128), (256, 128, 80)))
    assert pk.tile(128, causal=True) == (128, 128) and pk.tile(128) == (128, 176)


FA2 = (("tiles", ((256, 64, 128),)), ("causal_tiles", None), ("fill_blocks", 0.0), ("softmax_hidden", 0.0),
       ("persistent", False))


def test_an_architecture_entry_replaces_the_facts_on_chips_of_that_architecture_by_hand(tmp_path):
    """FA with an `ampere` entry (a FlashAttention-2-like kernel: 64 x 128 tiles, no fill tile, nothing hidden,
    non-persistent). 1024 tokens, 2 heads, d64 on an ampere toy chip: 16 query blocks x 2 heads = 32 CTAs on 32
    of the 100 cores. A 64 x 128 tile is half the 128 x 128 one: 2.097 us of matrix work and 1.147 us of softmax,
    in turn; a CTA walks 8 of them (25.952 us), then waits for its 64 x 64 bf16 Q tile and O store (16 KiB at its
    core's 10 GB/s: 1.638 us): 27.590 us. Chips of another (or no) architecture keep FA's price (41.617 us)."""
    pk = replace(FA, by_architecture=(("ampere", FA2),))
    tile_mat, tile_soft = 2 * 2 * 8192 * 64 / 1e12, 8192 / 1e10 + 4 * 8192 / 1e11
    want = 8 * (tile_mat + tile_soft) + 2 * 64 * 64 * 2 / 1e12 * 100
    assert want == pytest.approx(27.590e-6, rel=1e-4)
    assert _compute(_toy_sfu(tmp_path, architecture="ampere"), _op(), pk) == pytest.approx(want)
    for arch in ("hopper", None):
        assert _compute(_toy_sfu(tmp_path, architecture=arch), _op(), pk) == pytest.approx(41.617e-6, rel=1e-4)
    # an entry's tiles serve its causal kernel too (the section's causal_tiles do not leak into it)
    causal = replace(FA, causal_tiles=((256, 128, 256),), by_architecture=(("ampere", FA2),))
    assert causal.on("ampere").tile(64, causal=True) == (64, 128) and causal.on("hopper").tile(64, causal=True) == (128, 256)


def test_resident_ctas_run_their_work_under_each_others_q_and_o_waits_by_hand(tmp_path):
    """The FA2-like kernel above with two CTAs per core: a CTA's 1.638 us of Q/O waits run under the other's
    25.952 us of work, so compute = max(25.952, (25.952 + 1.638) / 2) = 25.952 us. On a toy whose memory is 100x
    slower (10 GB/s) the waits are 163.84 us a CTA: max(25.952, (25.952 + 163.84) / 2) = 94.896 us."""
    ampere = _toy_sfu(tmp_path, architecture="ampere")
    one = replace(FA, by_architecture=(("ampere", FA2),))
    two = replace(FA, by_architecture=(("ampere", FA2 + (("ctas_per_core", 2),)),))
    work = 8 * (2 * 2 * 8192 * 64 / 1e12 + 8192 / 1e10 + 4 * 8192 / 1e11)
    assert _compute(ampere, _op(), one) == pytest.approx(work + 2 * 64 * 64 * 2 / 1e12 * 100)
    assert _compute(ampere, _op(), two) == pytest.approx(work)
    slow = Path(ampere).read_text().replace("bandwidth: 1 TB/s}", "bandwidth: 10 GB/s}")
    p = tmp_path / "toy-slow.yaml"
    p.write_text(slow.replace("name: toy-sfu-ampere", "name: toy-slow"))
    assert _compute(str(p), _op(), two) == pytest.approx((work + 2 * 64 * 64 * 2 / 1e10 * 100) / 2)
    assert (work + 2 * 64 * 64 * 2 / 1e10 * 100) / 2 == pytest.approx(94.896e-6, rel=1e-4)


def test_the_default_stack_prices_flashattention2_on_ampere_and_ada_chips():
    """vLLM V1 runs FlashAttention-2 through the paged KV cache on sm80/sm86/sm89: the split-KV kernel's 64-row
    tiles (64 x 128 at head_dim 128, 64 x 256 at 64), non-persistent, nothing hidden; FA3's tiles on Hopper."""
    st = load_stack("vllm")
    for arch in ("ampere", "ada"):
        pk = st.prefill_kernel.on(arch)
        assert pk.tile(128) == (64, 128) and pk.tile(128, causal=True) == (64, 128) and pk.tile(64) == (64, 256)
        assert not pk.persistent and pk.fill_blocks == 0 and pk.softmax_hidden == 0
    # two 80 KB CTAs per A100 SM (set_params_splitkv: num_sm * 2); one in an sm89 SM's 100 KB
    assert st.prefill_kernel.on("ampere").ctas_per_core == 2 and st.prefill_kernel.on("ada").ctas_per_core == 1
    assert st.prefill_kernel.on("hopper") == st.prefill_kernel
    op = row_to_op({"op": "attention", "dtype": "bf16", "phase": "prefill", "batch": 1, "heads": 32, "kv_heads": 8,
                    "head_dim": 128, "seqlen_q": 2048, "seqlen_kv": 2048, "causal": True, "kernel": "flash"})
    opts = st.cost_options(CostOptions())
    assert "flash 64x128" in CostModel(load_chip("a100-sxm"), opts).op_cost(op).detail
    assert "flash 64x128" in CostModel(load_chip("l40s"), opts).op_cost(op).detail
    assert "flash 128x128" in CostModel(load_chip("h100-sxm"), opts).op_cost(op).detail
    d = st.to_dict()["prefill_attention"]["by_architecture"]
    assert d["ampere"]["tiles"][1] == [128, 64, 128] and d["ampere"]["persistent"] is False


@pytest.mark.parametrize("entry, field", [
    ("      volta2:\n        fill_blocks: 0\n        source: x\n", "by_architecture"),
    ("      volta:\n        fill_blocks: 0\n", "source"),
    ("      volta:\n        fill_block: 0\n        source: x\n", "fill_block"),
])
def test_bad_architecture_entries_are_located(tmp_path, entry, field):
    st = load_stack("vllm")
    src = Path(st.path).read_text().replace("name: vllm", "name: bad").replace(
        "    by_architecture:\n      ampere:\n", "    by_architecture:\n" + entry + "      ampere:\n", 1)
    p = tmp_path / "bad.yaml"
    p.write_text(src)
    with pytest.raises(SpecError, match=rf"bad.yaml:\d+:\d+.*prefill_attention.*{field}"):
        load_stack(str(p))


def test_a_causal_kernel_uses_its_own_tiles(tmp_path):
    """Causal, 1024 tokens, 2 heads, d64: with 128 x 256 tiles a query block i computes ceil((i+1) x 128
    / 256) key tiles; with causal tiles of 128 x 128, the 128-key tiles of the causal test below."""
    chip = _toy_sfu(tmp_path)
    base = replace(FA, fill_blocks=0, tiles=((256, 128, 256),))
    own = replace(base, causal_tiles=((256, 128, 128),))
    assert _compute(chip, _op(causal=True), own) == pytest.approx(_compute(chip, _op(causal=True), replace(FA, fill_blocks=0)))
    assert _compute(chip, _op(causal=True), base) > _compute(chip, _op(causal=True), own)


def test_a_non_persistent_cta_waits_for_its_q_tile_and_o_store_by_hand(tmp_path):
    """16 CTAs each read a 128 x 64 bf16 Q tile and write its O tile: 16 x 2 x 16 KiB = 512 KiB, i.e.
    0.524 us of the toy's 1 TB/s; each CTA moves its 32 KiB at its core's share (10 GB/s): 3.277 us,
    which is 0.524 us x 100 cores / 16 CTAs (the toy lists no latency)."""
    chip = _toy_sfu(tmp_path)
    diff = _compute(chip, _op(), replace(FA, persistent=False)) - _compute(chip, _op(), FA)
    assert diff == pytest.approx(16 * 2 * 128 * 64 * 2 / 1e12 * 100 / 16)


def test_causal_blocks_visit_their_keys_and_one_half_masked_diagonal_tile(tmp_path):
    """Causal, 1024 tokens: query block i (0..7) visits i + 1 key tiles; the model counts the visible
    pairs at tile granularity plus half a tile per block, i.e. 8 x 9 / 2 = 36 tiles per head, spread over
    the 16 CTAs' waves (one wave: compute = the CTAs' mean time x 100 / 16 / (100 / 16))."""
    chip = _toy_sfu(tmp_path)
    pk = replace(FA, fill_blocks=0)
    full = _compute(chip, _op(), pk)  # 8 tiles per CTA
    causal = _compute(chip, _op(causal=True), pk)
    assert causal == pytest.approx(full * 36 / 64, rel=1e-3)


def test_without_a_kernel_profile_or_a_special_unit_the_kernel_only_rule_is_unchanged(tmp_path):
    """No prefill kernel: the 128-row block rule; a chip listing no special-function unit (the toy, TPUs,
    wafer-scale chips): the GPU kernel's facts do not apply either."""
    chip = _toy_sfu(tmp_path)
    op = _op()
    rule = CostModel(load_chip(chip), CostOptions(softmax="serial")).op_cost(op).compute_s
    assert _compute(chip, op, None) == pytest.approx(rule) and _compute(chip, op, FA) != pytest.approx(rule)
    assert _compute(str(TOY), op, FA) == pytest.approx(_compute(str(TOY), op, None))


def test_the_default_stack_carries_fa3_facts_and_bad_values_are_located(tmp_path):
    st = load_stack("vllm")
    assert st.prefill_kernel is not None and st.prefill_kernel.tile(128) == (128, 176)
    assert st.cost_options(CostOptions()).prefill_kernel == st.prefill_kernel
    assert load_stack("ideal").prefill_kernel is None
    assert st.to_dict()["prefill_attention"]["tiles"][0] == [64, 192, 128]
    assert st.prefill_kernel.tile(128, causal=True) == (128, 128)  # FA3: kBlockN = Is_causal ? 128 : 176
    src = Path(st.path).read_text().replace("softmax_hidden: 0.30", "softmax_hidden: 1.5")
    p = tmp_path / "bad.yaml"
    p.write_text(src.replace("name: vllm", "name: bad"))
    with pytest.raises(SpecError, match=r"bad.yaml:\d+:\d+.*prefill_attention.softmax_hidden"):
        load_stack(str(p))


@pytest.mark.parametrize("model", ["llama-3.1-8b", "gemma-2-27b"])
def test_many_steps_at_once_price_as_each_step_alone(model):
    """The array path (CostModel.over_steps over a SeqArrays of K steps) and the per-op path give the
    same prefill attention figures under the default stack's prefill kernel (mixed steps: prefill chunks
    after cached tokens, and decodes)."""
    import numpy as np

    from hwmodels import load_system
    from workloads import Batch, build_graph
    from workloads.graph import SeqArrays
    from workloads.stepops import attention_ops
    from workloads.model import load_model
    from workloads.parallel import Parallelism
    from workloads.quant import Quantization

    spec, q, par = load_model(model), Quantization.parse("bf16"), Parallelism()
    cm = CostModel(load_system("h100-sxm"), load_stack("vllm").cost_options(CostOptions()), resident_bytes=2e10)
    assert cm.options.prefill_kernel is not None
    new = np.array([[1, 300, 37, 1000]] * 4)
    ctx = np.array([[900, 0, 5, 24]]) + np.arange(4)[:, None] * 100
    priced = [cm.over_steps()._price(o) for o in attention_ops(spec, SeqArrays(new, ctx), q, par, "flash")]
    for k in range(4):
        g = build_graph(spec, Batch(tuple(zip(new[k].tolist(), ctx[k].tolist()))), quant=q, parallel=par,
                        attention_kernel="flash")
        ref = [cm._price(o) for o in g.ops if o.kind == "attention"]
        assert len(ref) == len(priced)
        for r, p in zip(ref, priced):
            for f in ("compute_s", "memory_s", "time_s", "flops", "bytes_main"):
                assert np.asarray(getattr(p, f))[k] == pytest.approx(getattr(r, f), rel=1e-12), f


def test_published_attention_rows_score_with_their_own_kernel_and_decode_without_launches():
    """Every published attention row gets a finite price; rows naming a kernel profile change price
    only under own_kernel; exactly three rows are marked as the ones softmax_hidden was fitted on."""
    import numpy as np

    from sim.validation.published import attention_kernel_profiles, score_attention_kernels

    profiles = attention_kernel_profiles()
    assert set(profiles) == {"triton_tutorial_flash_v2", "tk", "fa2", "torch_fa2", "cudnn_sdpa"}
    assert not profiles["tk"].persistent
    assert profiles["fa2"].tile(128) == (128, 64) and profiles["fa2"].softmax_hidden == 0
    stack, own = score_attention_kernels(), score_attention_kernels(own_kernel=True)
    assert np.isfinite(stack["predicted"]).all() and np.isfinite(own["predicted"]).all()
    named = stack["kernel_profile"] != ""
    assert named.any() and (own["predicted"][~named] == stack["predicted"][~named]).all()
    pre = named & (stack["phase"] == "prefill")
    assert pre.any() and (own["predicted"][pre] != stack["predicted"][pre]).all()
    # decode rows: FlashAttention-2's facts on an H100 can price as the stack's FA3 facts do (2 CTAs per SM
    # holding one tile each against 1 CTA holding two); upstream FA3's 128-row tile changes the price
    dec = named & (stack["phase"] == "decode")
    assert (own["predicted"][dec] != stack["predicted"][dec]).any()
    fit = stack["fit"].astype(str)
    assert fit.str.startswith("fitted").sum() == 3
    assert ((fit == "") | fit.str.startswith("fitted")).all()
    assert (stack["phase"] == "decode").sum() >= 13


def test_decode_kernel_profiles_load_and_bad_facts_are_located(tmp_path):
    """attention_kernels.yaml's decode_kernels: upstream FlashAttention-3's 128-row query tile; a bad
    fact names the file and the field."""
    from hwmodels.errors import SpecError
    from sim.validation.published import ATTENTION_KERNELS, decode_kernel_profiles

    fa3 = decode_kernel_profiles()["fa3_upstream"]
    assert fa3.q_tile_rows == 128 and fa3.kv_tile_tokens == 128 and fa3.gqa == "grouped"
    bad = tmp_path / "k.yaml"
    bad.write_text(open(ATTENTION_KERNELS, encoding="utf-8").read().replace("q_tile_rows: 128", "q_tile_rows: -1"))
    with pytest.raises(SpecError, match="q_tile_rows"):
        decode_kernel_profiles(str(bad))


def test_the_decode_section_prices_each_row_with_its_own_kernel_too():
    """Section 4d of the validation report: every decode row with the default stack and with the facts
    of the kernel that was timed (column `own facts` names them), and a summary row for each."""
    from reports.validation_report import decode_kernels_section
    from sim.validation.published import score_attention_kernels

    runs = {"ideal": score_attention_kernels(stack="ideal"), "default": score_attention_kernels(),
            "own": score_attention_kernels(own_kernel=True)}
    runs = {k: v[v["phase"] == "decode"].reset_index(drop=True) for k, v in runs.items()}
    seen = {}

    class Body:
        def h(self, level, text):
            seen.setdefault("h", []).append(text)

        def p(self, text):
            seen.setdefault("p", []).append(text)

        def table(self, rows, cols, fmt=None):
            seen.setdefault("tables", []).append((rows, [c for c, _ in cols]))

    decode_kernels_section(Body(), runs)
    rows, cols = seen["tables"][0]
    assert "own" in cols and "profile" in cols and len(rows) == len(runs["default"])
    assert {r["profile"] for r in rows} >= {"vllm", "fa3_upstream", "fa2"}
    assert [s["run"] for s in seen["tables"][1][0]] == ["ideal", "vllm", "own kernel"]


def _toy_mma(tmp_path, share) -> str:
    """The special-unit toy chip as a Hopper whose matrix unit runs mma.sync at ``share`` of its rate."""
    src = Path(_toy_sfu(tmp_path, architecture="hopper")).read_text().replace(
        "  - kind: matrix\n", f"  - kind: matrix\n    mma_sync_share: {share}\n    mma_sync_source: test\n", 1)
    p = tmp_path / "toy-mma.yaml"
    p.write_text(src.replace("name: toy-sfu-hopper", "name: toy-mma"))
    return str(p)


def test_a_kernel_that_issues_mma_sync_runs_its_matrix_work_at_the_chips_share_by_hand(tmp_path):
    """FA (one fill tile, half the matrix work hiding the softmax) on a toy whose mma.sync runs at 0.5 of its
    matrix rate: a 128 x 128 tile's QK^T and PV take 2 x 4.194 = 8.389 us; the softmax (2.294 us) hides under
    half of that, so a tile takes 8.389 us; 8 tiles plus the fill tile at the serial rate (8.389 + 2.294):
    77.791 us. The native path keeps the chip's rate (41.617 us), as does mma.sync on a chip that lists no share
    (mma.sync is its own path: the toy without mma_sync_share, e.g. Ampere)."""
    tile_mat, tile_soft = 2 * 2 * 2 * 16384 * 64 / 1e12, 16384 / 1e10 + 4 * 16384 / 1e11
    want = 8 * (tile_mat + max(0.0, tile_soft - 0.5 * tile_mat)) + (tile_mat + tile_soft)
    assert want == pytest.approx(77.791e-6, rel=1e-4)
    sync = replace(FA, mma="sync")
    assert _compute(_toy_mma(tmp_path, 0.5), _op(), sync) == pytest.approx(want)
    assert _compute(_toy_mma(tmp_path, 0.5), _op(), FA) == pytest.approx(41.617e-6, rel=1e-4)
    assert _compute(_toy_sfu(tmp_path, architecture="hopper"), _op(), sync) == pytest.approx(41.617e-6, rel=1e-4)


def test_flashattention2_facts_say_mma_sync_and_hopper_chips_carry_the_share():
    """vllm-0.5's FA2 (every architecture) and the fa2 / torch_fa2 kernel profiles issue mma.sync; vllm's FA3 on
    Hopper is native. The GH100 chips carry 0.68 (Luo et al.'s H800 microbenchmarks: 494 of 757 TFLOP/s for mma.sync,
    ~96 % of it for wgmma); an A100 lists none (mma.sync is its path: 1)."""
    from sim.validation.published import attention_kernel_profiles

    assert load_stack("vllm-0.5").prefill_kernel.on("hopper").mma == "sync"
    assert load_stack("vllm").prefill_kernel.on("hopper").mma == "native"
    assert attention_kernel_profiles()["torch_fa2"].on("hopper").mma == "sync"
    assert attention_kernel_profiles()["cudnn_sdpa"].mma == "native"
    assert round(494 / (0.96 * 757), 2) == 0.68
    for chip in ("h100-sxm", "h100-pcie", "h200", "h800", "gh200"):
        u = load_chip(chip).matrix_unit()
        assert u.mma_sync_share == 0.68 and u.mma_sync_source
    assert load_chip("a100-sxm").matrix_unit().mma_sync_share == 1.0
    assert load_stack("vllm-0.5").to_dict()["prefill_attention"]["mma"] == "sync"


def test_a_bad_mma_path_or_a_share_without_its_source_is_located(tmp_path):
    st = load_stack("vllm-0.5")
    src = Path(st.path).read_text().replace("name: vllm-0.5", "name: bad").replace("    mma: sync\n", "    mma: wgmma\n", 1)
    p = tmp_path / "bad.yaml"
    p.write_text(src)
    with pytest.raises(SpecError, match=r"bad.yaml:\d+:\d+.*prefill_attention.*mma"):
        load_stack(str(p))
    with pytest.raises(Exception, match="mma_sync_source"):
        load_chip("a100-sxm", {"compute.matrix.mma_sync_share": 0.5})
