"""DRAM fraction by access pattern (a row gather) on the toy chip (1 TB/s HBM, no efficiency, no launch
overhead): checkable by hand."""

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from hwmodels import load_chip
from hwmodels.classes import CLASS_SOURCE_PREFIX, chip_classes
from hwmodels.errors import SpecError
from sim.cost import CostModel, CostOptions
from sim.ops import RowError, predict_ops, row_to_op

DATA = Path(__file__).parent.parent / "data"
GATHER = {"memory.hbm.efficiency_by_pattern": {"gather": 0.25},
          "memory.hbm.efficiency_by_pattern_source": "test: a quarter for gathers"}


@pytest.fixture(scope="module")
def toy():
    return load_chip(DATA / "toy-chip.yaml")


def emb(m=1000, n=1000):
    return row_to_op({"op": "embedding", "dtype": "bf16", "m": m, "n": n})


def test_embedding_row_is_a_gather_of_rows():
    """1000 rows of 1000 bf16 elements: 2 MB of table rows read (a weight), 2 MB written."""
    op = emb()
    assert op.kind == "embedding"
    assert op.bytes_of("weight") == 2e6 and op.bytes_written == 2e6 and op.bytes == 4e6


def test_gather_fraction_by_hand(toy):
    """4 MB at 1 TB/s = 4 us; at a quarter of the streaming rate, 16 us."""
    quarter = load_chip(DATA / "toy-chip.yaml", GATHER)
    plain, slow = CostModel(toy).op_cost(emb()), CostModel(quarter).op_cost(emb())
    assert plain.memory_s == pytest.approx(4e-6)
    assert slow.memory_s == pytest.approx(16e-6) and slow.bound == "memory"
    # a plain stream (elementwise copy) of the same bytes is untouched
    copy = row_to_op({"op": "memcpy", "dtype": "bf16", "bytes": 4e6})
    assert CostModel(quarter).op_cost(copy).memory_s == pytest.approx(4e-6)
    # --no-efficiency ignores it, as every efficiency field
    off = CostOptions(use_efficiency=False)
    assert CostModel(quarter, off).op_cost(emb()).memory_s == pytest.approx(4e-6)


def test_kind_factor_wins_over_pattern():
    """efficiency_by_kind.embedding (fitted to the kind's own kernels) replaces the pattern's fraction."""
    both = load_chip(DATA / "toy-chip.yaml", {**GATHER, "memory.hbm.efficiency_by_kind": {"embedding": 0.5},
                                              "memory.hbm.efficiency_source": "test"})
    assert CostModel(both).op_cost(emb()).memory_s == pytest.approx(8e-6)


def test_pattern_schema():
    with pytest.raises(SpecError, match="did you mean 'gather'"):
        load_chip(DATA / "toy-chip.yaml", {"memory.hbm.efficiency_by_pattern": {"gahter": 0.5},
                                           "memory.hbm.efficiency_by_pattern_source": "x"})
    with pytest.raises(SpecError, match="efficiency_by_pattern_source"):
        load_chip(DATA / "toy-chip.yaml", {"memory.hbm.efficiency_by_pattern": {"gather": 0.5}})
    with pytest.raises(SpecError, match="at most 1"):
        load_chip(DATA / "toy-chip.yaml", {"memory.hbm.efficiency_by_pattern": {"gather": 1.5},
                                           "memory.hbm.efficiency_by_pattern_source": "x"})


def test_every_class_documents_a_gather_default(toy):
    """No silent 100%: every class has a gather fraction with a source; a chip of a class that gives none
    takes it, marked as a class default; the toy chip (no class) keeps none."""
    for name, cls in chip_classes().items():
        assert 0 < cls.pattern_efficiency["gather"] <= 1 and cls.pattern_source, name
    assert toy.main_memory.efficiency_by_pattern == {}
    hbm = load_chip(DATA / "toy-chip.yaml", {"class": "gpu-hbm"}).main_memory
    assert hbm.efficiency_by_pattern == {"gather": chip_classes()["gpu-hbm"].pattern_efficiency["gather"]}
    assert hbm.efficiency_by_pattern_source.startswith(CLASS_SOURCE_PREFIX)


def test_ops_csv_embedding_rows(toy):
    df = pd.DataFrame([{"hardware": str(DATA / "toy-chip.yaml"), "op": "embedding", "dtype": "bf16", "m": 1000,
                        "n": 1000}, {"hardware": str(DATA / "toy-chip.yaml"), "op": "embedding", "dtype": "bf16", "m": 1000}])
    out = predict_ops(df, stack="ideal")
    assert out.time_s[0] == pytest.approx(4e-6 + toy.main_memory.latency_s)
    assert "missing value in column 'n'" in out.error[1]


# -- inter-kernel L2 residency (toy chip plus a 10 MB, 10 TB/s L2: tests/data/toy-chip-l2.yaml) -------------

def add_op(mb, fresh_mb):
    """A residual add of two ``mb``-MB inputs into one ``mb``-MB output; ``fresh_mb`` of its input just written."""
    return row_to_op({"op": "elementwise", "dtype": "bf16", "numel": mb * 5e5, "inputs": 2, "outputs": 1,
                      "fresh_bytes": fresh_mb * 1e6})


@pytest.fixture(scope="module")
def l2chip():
    return load_chip(DATA / "toy-chip-l2.yaml")


def test_fresh_input_read_from_l2_by_hand(l2chip):
    """1 MB + 1 MB in, 1 MB out: 3 us from HBM at 1 TB/s. The 1 MB the previous kernel wrote is still in
    the 10 MB L2 (max(1 MB fresh, 2 MB other) <= 10 MB): HBM moves 2 MB (2 us), L2 1 MB (0.1 us)."""
    cm = CostModel(l2chip)
    cold, warm = cm.op_cost(add_op(1, 0)), cm.op_cost(add_op(1, 1))
    assert cold.memory_s == pytest.approx(3e-6)
    assert warm.memory_s == pytest.approx(2e-6)
    assert dict(warm.bytes_by_level) == pytest.approx({"hbm": 2e6, "l2": 1e6})


def test_fresh_input_evicted_when_the_other_traffic_overflows_l2(l2chip):
    """6 MB fresh fits the 10 MB L2, but the add's other 12 MB (second input, output) stream through it
    alongside: the line at share u of the fresh tensor sees (1 - u) 6 MB written after it and u 12 MB of other
    traffic before the add reads it, 6 + 6 u MB <= 10 MB for u <= 2/3: the first 4 MB are read from L2, the
    last 2 MB from HBM (14 MB from HBM, 14 us). 12 MB fresh (other 24 MB) overflows at u = 0: all from HBM. A
    norm over the same 6 MB (other traffic: 6 MB out + the weight) keeps it all."""
    cm = CostModel(l2chip)
    c = cm.op_cost(add_op(6, 6))
    assert c.memory_s == pytest.approx(14e-6)
    assert dict(c.bytes_by_level) == pytest.approx({"hbm": 14e6, "l2": 4e6})
    assert cm.op_cost(add_op(12, 12)).memory_s == pytest.approx(36e-6)
    norm = row_to_op({"op": "norm", "dtype": "bf16", "m": 3000, "n": 1000, "fresh_bytes": 6e6})
    c = cm.op_cost(norm)
    assert dict(c.bytes_by_level)["l2"] == pytest.approx(6e6)
    assert c.memory_s == pytest.approx(6.002e-6)  # the 6 MB output and the 2 kB weight from HBM


def test_no_residency_without_a_cache_or_when_fused(toy, l2chip):
    assert CostModel(toy).op_cost(add_op(1, 1)).memory_s == pytest.approx(3e-6)  # no chip-level cache
    # a fused op keeps its activations on chip anyway: all 3 MB in L2, none counted twice
    fused = CostModel(l2chip, CostOptions(fused=True)).op_cost(replace(add_op(1, 1), fusable=True))
    assert dict(fused.bytes_by_level) == {"l2": 3e6}


def test_graph_marks_what_the_previous_kernel_wrote():
    """Llama-3.1-8B, 512 tokens, bf16: the residual add reads the o_proj output (512 x 4096 x 2 B) fresh; the
    activation reads all of gate_up's output; the norm after the residual add reads its output; the
    embedding and GEMMs are not marked."""
    from workloads import Batch, build_graph

    g = build_graph("llama-3.1-8b", Batch.prefill(1, 512))
    ops = {o.name: o for o in g.ops}
    h = 512 * 4096 * 2
    assert ops["attn.residual"].fresh_bytes == h and ops["mlp.residual"].fresh_bytes == h
    assert ops["mlp.norm"].fresh_bytes == h and ops["attn.norm"].fresh_bytes == h
    assert ops["mlp.act"].fresh_bytes == ops["mlp.act"].bytes_read
    assert ops["embed.tokens"].fresh_bytes == 0 and ops["attn.qkv_proj"].fresh_bytes == 0


def test_fresh_bytes_spread_over_what_the_previous_kernel_wrote(l2chip):
    """Rope over 6 MB of q and k (read and written in place) fresh in the 10 MB L2. Alone they fit: read from L2.
    The QKV projection wrote them with v between them, 9 MB in all: each q/k line sees the rest of those 9 MB
    written after it, still within 10 MB: L2. 12 MB written (a v twice as big) overflow it: HBM (12 MB moved)."""
    cm = CostModel(l2chip)

    def rope(span):
        row = {"op": "rope", "dtype": "bf16", "numel": 3e6, "m": 1000, "fresh_bytes": 6e6}
        return row_to_op(row if span is None else {**row, "fresh_span_bytes": span})

    for span, l2 in ((None, 6e6), (9e6, 6e6), (12e6, 0.0)):
        assert dict(cm.op_cost(rope(span)).bytes_by_level).get("l2", 0.0) == pytest.approx(l2), span
    assert cm.op_cost(rope(12e6)).memory_s == pytest.approx(12e-6)
    with pytest.raises(RowError, match="at least fresh_bytes"):
        rope(5e6)
    # the graph marks the span: llama-3.1-8b's rope reads q and k, the QKV projection wrote q, k and v
    from workloads import Batch, build_graph

    ops = {o.name: o for o in build_graph("llama-3.1-8b", Batch.prefill(1, 512)).ops}
    r = ops["attn.rope"]
    assert r.fresh_bytes == 512 * (32 + 8) * 128 * 2 and r.fresh_span == 512 * (32 + 16) * 128 * 2
    # the MLP's norm reads the attention residual add's output; the add read two tensors along its writes, so the
    # span is all the add moved (3 x 512 x 4096 x 2 B), not only what it wrote; after a GEMM, what it wrote
    n, add = ops["mlp.norm"], ops["attn.residual"]
    assert n.fresh_bytes == 512 * 4096 * 2 and n.fresh_span == add.bytes == 3 * 512 * 4096 * 2
    assert ops["mlp.act"].fresh_span == ops["mlp.gate_up_proj"].bytes_written


def test_fresh_span_of_a_streaming_writer_counts_its_reads(l2chip):
    """A norm over 4 MB fresh from a residual add in the 10 MB L2. Counting only the add's 4 MB of writes, every
    line survives (4 MB written after it at most, plus the norm's own 4 MB of output); counting the add's 8 MB of
    reads along them (12 MB in all, above the L2), none does: the norm reads HBM."""
    cm = CostModel(l2chip)
    row = {"op": "norm", "dtype": "bf16", "m": 1000, "n": 2000, "fresh_bytes": 4e6}
    assert dict(cm.op_cost(row_to_op(row)).bytes_by_level).get("l2", 0.0) == pytest.approx(4e6)
    assert dict(cm.op_cost(row_to_op({**row, "fresh_span_bytes": 12e6})).bytes_by_level).get("l2", 0.0) == 0.0


def test_ops_csv_fresh_bytes_and_cache_bytes_column(l2chip):
    path = str(DATA / "toy-chip-l2.yaml")
    rows = [{"hardware": path, "op": "elementwise", "dtype": "bf16", "numel": 5e5, "inputs": 2, "outputs": 1,
             "fresh_bytes": fb} for fb in (0, 1e6, 5e6, -1)]
    out = predict_ops(pd.DataFrame(rows), stack="ideal")
    assert list(out.cache_bytes[:3]) == [0.0, 1e6, 2e6]  # fresh bytes are capped at what the op reads
    assert out.time_s[1] < out.time_s[0]
    assert "zero or more" in out.error[3]


def test_validation_scoring_prices_fresh_bytes_as_llmsim_ops_does(l2chip):
    """The validation scorer (sim.validation.compare, which docs/validation.md and calibration use) prices
    each distinct kernel once by its shape columns: fresh_bytes is one of them, so a row's residency is the
    same as `llmsim ops` gives it (it was once dropped there: the report scored without L2 residency)."""
    from sim.validation.compare import compare

    path = str(DATA / "toy-chip-l2.yaml")
    rows = pd.DataFrame([{"hardware": path, "op": "elementwise", "dtype": "bf16", "numel": 5e5, "inputs": 2,
                          "outputs": 1, "fresh_bytes": fb, "measured_time_s": 3e-6} for fb in (0.0, 1e6)])
    scored = compare(rows).scored
    ops = predict_ops(rows)
    assert list(scored.predicted_time_s) == pytest.approx(list(ops.time_s))
    assert scored.predicted_time_s[1] < scored.predicted_time_s[0]
    # a fresh byte count above 2**31 (a 32k-token SiluAndMul input) is a count, not an index
    big = rows.iloc[[1]].assign(numel=2e9, fresh_bytes=4e9)
    assert compare(big).counts["rejected"] == 0
