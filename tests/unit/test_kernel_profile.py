"""A row's ``kernel_profile`` (sim.ops.predict_ops, and through it ``llmsim validate``): an attention row timed
on a kernel of sim/validation/data/published/attention_kernels.yaml is priced with that kernel's facts, through
the one place that turns a name into cost options (sim.validation.kernel_profiles.profile_options)."""

from dataclasses import replace

import numpy as np
import pandas as pd

from hwmodels.stack import DEFAULT_STACK, load_stack
from sim.cost import CostOptions
from sim.ops import predict_ops
from sim.validation.compare import compare
from sim.validation.measure import load_measurements
from sim.validation.published import attention_kernel_profiles, decode_kernel_profiles

PREFILL = {"hardware": "h100-sxm", "op": "attention", "dtype": "bf16", "phase": "prefill", "batch": 1, "heads": 32,
           "kv_heads": 8, "head_dim": 128, "seqlen_q": 4096, "seqlen_kv": 4096, "causal": True, "kernel": "flash"}
DECODE = {**PREFILL, "phase": "decode", "batch": 32, "seqlen_q": 1, "seqlen_kv": 8192, "causal": False}


def test_torch_fa2_on_hopper_takes_the_sm90_tiles_of_the_source():
    """flash_fwd_launch_template.h on an H100: 128 x 128 at head_dim 64, 128 x 64 at 128, 128 x 64 (8 warps) at
    224, 64 x 64 at 256 (the A100 keeps 128 x 64 there); torch's FA2 is the standard kernel's facts (one copy)."""
    fa2 = attention_kernel_profiles()["torch_fa2"]
    assert fa2 == attention_kernel_profiles()["fa2"]
    hop = fa2.on("hopper")
    assert [hop.tile(d, True) for d in (64, 128, 224, 256)] == [(128, 128), (128, 64), (128, 64), (64, 64)]
    assert fa2.on("ampere").tile(256) == (128, 64) and hop.ctas_per_core == 2 and not hop.persistent


def test_a_named_row_is_priced_as_its_kernel_and_an_empty_cell_as_the_stack():
    """The same shape three times: no profile (the default stack's FA3), torch_fa2 and cudnn_sdpa; each equals
    predict_ops with that kernel's facts set by hand, and the three prices differ."""
    rows = pd.DataFrame([{**PREFILL, "kernel_profile": p} for p in ("", "torch_fa2", "cudnn_sdpa")])
    got = predict_ops(rows)["time_s"].to_numpy()
    stack = predict_ops(pd.DataFrame([PREFILL]))["time_s"].iloc[0]
    by_hand = [predict_ops(pd.DataFrame([PREFILL]), options=CostOptions(prefill_kernel=attention_kernel_profiles()[p]))
               ["time_s"].iloc[0] for p in ("torch_fa2", "cudnn_sdpa")]
    assert got[0] == stack and list(got[1:]) == by_hand and len(set(got)) == 3
    dec = predict_ops(pd.DataFrame([{**DECODE, "kernel_profile": "cudnn_sdpa"}]))["time_s"].iloc[0]
    st = replace(load_stack(DEFAULT_STACK), decode_kernel=decode_kernel_profiles()["cudnn_sdpa"])
    assert dec == predict_ops(pd.DataFrame([DECODE]), stack=st)["time_s"].iloc[0]


def test_an_unknown_profile_is_the_rows_error_and_the_others_still_run():
    out = predict_ops(pd.DataFrame([{**PREFILL, "kernel_profile": "fa9"}, PREFILL]))
    assert "column kernel_profile: unknown kernel 'fa9'" in out["error"].iloc[0] and "torch_fa2" in out["error"].iloc[0]
    assert np.isnan(out["time_s"].iloc[0]) and out["error"].iloc[1] == "" and out["time_s"].iloc[1] > 0


def test_validate_keeps_backends_of_one_shape_apart():
    """llmsim's own attention set: the flash and cudnn rows of one shape are priced apart (the profile is part of
    a kernel's key in compare), each as predict_ops prices it with its profile."""
    c = compare(load_measurements("h100-sxm-own-attention"))
    assert c.counts["rejected"] == 0
    s = c.scored[(c.scored["phase"] == "prefill") & (c.scored["head_dim"] == 128) & (c.scored["seqlen_q"] == 4096)]
    fa2, cud = (s[s["variant"] == v]["predicted_time_s"].iloc[0] for v in ("flash", "cudnn"))
    row = {**PREFILL, "kv_heads": 8}
    want = predict_ops(pd.DataFrame([{**row, "kernel_profile": p} for p in ("torch_fa2", "cudnn_sdpa")]),
                       options=CostOptions(cuda_graphs=True))["time_s"].to_numpy()
    assert (fa2, cud) == tuple(want) and fa2 != cud


def test_cudnn_softmax_share_is_the_fitted_one():
    """cudnn_sdpa's softmax_hidden (0.20) is fitted on the own set's 12 cuDNN prefill rows: their median error is
    the nearest to 0 of the steps of 0.05 (within 2 %: -1.7 % when it was fitted)."""
    c = compare(load_measurements("h100-sxm-own-attention")).scored
    cud = c[(c["variant"] == "cudnn") & (c["phase"] == "prefill")]
    assert len(cud) == 12 and abs(np.median(cud["rel_error"])) < 0.02


def test_flashinfer_cuda_core_decode_streams_its_kv_where_64_row_tiles_are_compute_bound():
    """FlashInfer's CUDA-core decode (decode_kernels.flashinfer) pads no query rows, so multi-head decode on an H20
    (78 SMs of a compute-poor part) is its KV stream: 16 requests x 32 heads x 32,000 tokens x 128 x 2 (K, V) x 2 B
    = 8.39 GB, 2.10 ms at 4.0 TB/s; priced within a quarter above that. The default stack's Hopper facts (FA3's
    64-row query tile, one real row) compute 64 padded rows a head: the same op prices above 1.5 x the stream."""
    fi = decode_kernel_profiles()["flashinfer"]
    assert fi.q_tile_rows == 0 and fi.kv_tile_tokens == 32 and fi.kv_tiles_in_flight == 3 and fi.split_rule == "fill"
    row = {**DECODE, "hardware": "h20", "dtype": "fp16", "batch": 16, "heads": 32, "kv_heads": 32, "seqlen_kv": 32000}
    own, vllm = predict_ops(pd.DataFrame([{**row, "kernel_profile": "flashinfer"}, row]),
                            options=CostOptions(cuda_graphs=True))["time_s"].to_numpy()
    stream = 16 * 32 * 32000 * 128 * 2 * 2 / 4.0e12
    assert stream <= own <= 1.25 * stream and vllm > 1.5 * stream
