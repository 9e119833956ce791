"""Configuration objects (sim/config.py): every setting is written once and the CLI flags, the sweep's
serving fields and the Python keywords all come from it; unknown names are refused with a
did-you-mean; the config object and the keywords give the same results."""

import argparse
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from hwmodels.errors import SpecError
from hwmodels.loader import load_hardware
from llmsim.cli import build_parser
from sim.config import PredictConfig, RunControls, ServingConfig, UnknownSettingError, default_of
from sim.predict import predict
from sim.serving import simulate
from sim.sweep.fields import SERVING_FIELDS, WORKLOAD_FIELDS, serving_kwargs
from sim.sweep.spec import spec_from_dict
from sim.techniques import max_batch_that_fits
from workloads.scenario import Request

DATA = Path(__file__).parent.parent / "data"
TOY = str(DATA / "toy-chip.yaml")
MODEL = "qwen2.5-0.5b"


def _actions(command: str) -> dict:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {opt: a for a in sub.choices[command]._actions for opt in a.option_strings}


@pytest.mark.parametrize("cls,command", [(ServingConfig, "serve"), (PredictConfig, "predict")])
def test_every_field_is_a_cli_flag_with_the_fields_default(cls, command):
    acts = _actions(command)
    for f in fields(cls):
        own, shared = f.metadata["flag"], f.metadata["shared"]
        if cls is PredictConfig and f.name in ("samples", "check_memory"):
            assert not own and not shared  # Python-only knobs of the static predictor
            continue
        assert own or shared, f"{cls.__name__}.{f.name} has no CLI flag"
        for flag in shared:
            assert flag in acts, f"{command} lacks {flag} ({f.name})"
        if not own:
            continue
        a = acts[own]
        assert a.help == f.metadata["help"]
        cli_default = f.metadata["argparse"].get("default", default_of(f))
        if not a.required:
            assert a.default == cli_default, f.name
        if "default" not in f.metadata["argparse"] and not a.required:
            assert a.default == default_of(f), f.name


def test_chunk_size_flag_resolves_to_the_fields_default():
    from llmsim.commands.serve import serving_config

    parser = build_parser()
    base = ["serve", "--hw", "h100-sxm", "--model", MODEL, "--rate", "1", "--num-requests", "1", "--input-len", "8",
            "--output-len", "2"]
    # settings left out come from the serving stack (ServingConfig.with_stack; default vllm: chunked
    # prefill with an 8192-token budget; ideal: whole prompts, 16384 tokens, a 512-token sarathi chunk)
    assert serving_config(parser.parse_args(base)).chunk_size is None
    got = serving_config(parser.parse_args(base)).with_stack()
    assert (got.scheduler, got.chunk_size, got.max_num_batched_tokens, got.max_num_seqs) == ("sarathi", 8192, 8192, 1024)
    got = serving_config(parser.parse_args(base + ["--stack", "ideal"])).with_stack()
    assert (got.scheduler, got.chunk_size, got.max_num_batched_tokens, got.max_num_seqs) == ("vllm", 512, 16384, 256)
    sar = parser.parse_args(base + ["--scheduler", "sarathi", "--max-num-batched-tokens", "2048"])
    assert serving_config(sar).with_stack().chunk_size == 2048
    cfg = serving_config(parser.parse_args(base + ["--swap-space", "8", "--slo-ttft", "0.5", "--prefix-caching"]))
    assert (cfg.swap_space_gib, cfg.slo_ttft_s, cfg.prefix_caching) == (8.0, 0.5, True)
    assert replace(cfg, swap_space_gib=4.0, slo_ttft_s=None, prefix_caching=False, stack=None) == ServingConfig()


def test_every_serving_field_is_a_sweep_field_with_the_same_default():
    for f in fields(ServingConfig):
        sw = f.metadata["sweep"]
        assert sw, f"ServingConfig.{f.name} has no sweep field"
        if sw[0] == "serving":
            assert SERVING_FIELDS[sw[1]][1] == default_of(f), f.name
        elif sw[0] == "workload":
            assert WORKLOAD_FIELDS[sw[1]][1] == default_of(f), f.name
        else:
            assert sw[0] in ("options", "hw")
    # a sweep point at the defaults passes simulate() exactly the defaults
    kw = serving_kwargs(lambda name: SERVING_FIELDS[name][1])
    assert ServingConfig(**kw) == ServingConfig()


def test_sweep_spec_takes_the_new_serving_fields_and_checks_them():
    base = {"hardware": TOY, "model": MODEL, "evaluator": "serving", "workload": {"input_len": 64, "output_len": 8}}
    spec = spec_from_dict({**base, "serving": {"rate": 2.0, "block_size": 32, "prefix_caching": True,
                                               "watermark": 0.0, "swap_space_gib": 0}})
    kw = serving_kwargs(spec.value_of)
    assert (kw["block_size"], kw["prefix_caching"], kw["watermark"], kw["swap_space_gib"]) == (32, True, 0.0, 0.0)
    with pytest.raises(SpecError) as e:
        spec_from_dict({**base, "serving": {"rate": 2.0, "watermark": 1.5, "prefix_caching": "yes",
                                            "block_sise": 8, "scheduler": "sarathy"},
                        "axes": {"serving.router": ["round-robin", "least-loaded"]}})
    msg = str(e.value)
    assert "unknown scheduler 'sarathy' (did you mean 'sarathi'?)" in msg
    assert "unknown router 'least-loaded'" in msg
    assert "watermark" in msg and "[0, 1)" in msg
    assert "prefix_caching" in msg and "true or false" in msg
    assert "did you mean 'block_size'" in msg


def test_fingerprint_ignores_new_fields_at_their_default():
    base = {"hardware": TOY, "model": MODEL, "evaluator": "serving", "serving": {"rate": 2.0}}
    a = spec_from_dict(base)
    b = spec_from_dict({**base, "serving": {"rate": 2.0, "block_size": 16}})
    c = spec_from_dict({**base, "serving": {"rate": 2.0, "block_size": 32}})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_unknown_keyword_names_the_nearest_setting():
    with pytest.raises(UnknownSettingError, match=r"unknown setting 'tpp' \(did you mean 'tp'\?\)") as e:
        simulate([Request(0, 0.0, 10, 2)], TOY, MODEL, tpp=2)
    assert isinstance(e.value, TypeError) and isinstance(e.value, SpecError)
    with pytest.raises(TypeError, match="did you mean 'samples'"):
        predict(MODEL, TOY, 1, 8, 2, sample=3)
    with pytest.raises(TypeError, match="did you mean 'kv_window'"):
        max_batch_that_fits(MODEL, TOY, 8, 2, kv_windw=4)
    with pytest.raises(TypeError, match="did you mean 'until_s'"):
        simulate([Request(0, 0.0, 10, 2)], TOY, MODEL, until=1.0)


def test_bad_values_name_field_and_flag():
    with pytest.raises(SpecError) as e:
        simulate([Request(0, 0.0, 10, 2)], TOY, MODEL, ServingConfig(block_size=0, watermark=2.0), timeline_points=0)
    msg = str(e.value)
    assert "block_size (--block-size): must be an integer >= 1, got 0" in msg
    assert "watermark (--watermark)" in msg and "timeline_points" in msg
    assert ServingConfig().problems() == [] and RunControls().problems() == []
    assert PredictConfig(model=MODEL, hw=TOY, batch=1, input_len=1, output_len=1).problems() == []


def test_config_object_and_keywords_give_the_same_run():
    reqs = [Request(i, 0.01 * i, 40 + i, 5) for i in range(6)]
    kw = dict(max_num_seqs=4, block_size=8, chunk_size=64, scheduler="sarathi", slo_ttft_s=0.5)
    a = simulate(reqs, TOY, MODEL, **kw).summary
    cfg = ServingConfig(**kw)
    b = simulate(reqs, TOY, MODEL, cfg).summary
    c = simulate(reqs, TOY, MODEL, replace(cfg, block_size=16), block_size=8).summary  # keywords win
    volatile = ("sim_wall_s", "steps_per_s", "peak_rss_mb")
    for s in (b, c):
        assert {k: v for k, v in s.items() if k not in volatile} == {k: v for k, v in a.items() if k not in volatile}


def test_predict_config_equals_keywords():
    p = predict(MODEL, TOY, 4, 128, 16, tp=1, samples=5)
    q = predict(config=PredictConfig(model=MODEL, hw=TOY, batch=4, input_len=128, output_len=16, samples=5))
    assert p.to_dict() == q.to_dict()


def test_capacity_for_weights_one_rule_scalar_and_array():
    from sim.sweep.hardware import capacity_bytes
    from sim.vector import HwPoints

    chip = load_hardware(TOY)
    main = chip.main_memory
    assert chip.capacity_for_weights() == main.total_capacity_bytes(chip.cores)
    sys1 = load_hardware("hgx-h100-8")
    caps = np.array([40e9, 80e9])
    hw = HwPoints(sys1, {f"chip.memory.{sys1.chip.main_memory.name}.capacity": caps}, n=2)
    assert np.array_equal(capacity_bytes(hw), caps * (sys1.chip.cores if sys1.chip.main_memory.per == "core" else 1))
    # an SRAM-only chip: every chip-level SRAM/DRAM level together
    for name in ("groq-lpu", "cerebras-wse3"):
        c = load_hardware(name)
        assert c.main_memory.kind == "sram"
        want = sum(m.total_capacity_bytes(c.cores) for m in c.memory if m.kind in ("sram", "dram") and m.per == "chip")
        assert c.capacity_for_weights() == want > 0




def test_static_scheduler_refuses_prefix_caching_before_running():
    # the static scheduler reserves each request's blocks for its whole batch: prefix caching (shared blocks)
    # cannot apply, and used to crash the run ("KV blocks released twice"); now a message, exit 2, in serve and plan
    from sim.config import STATIC_NO_PREFIX
    from sim.plan import PlanRequest

    probs = ServingConfig(scheduler="static", prefix_caching=True).problems()
    assert [p.path for p in probs] == ["prefix_caching (--prefix-caching)"] and probs[0].message == STATIC_NO_PREFIX
    assert not ServingConfig(scheduler="vllm", prefix_caching=True).problems()
    req = PlanRequest(model="qwen2.5-0.5b", rate_rps=1.0, slo_ttft_p99_s=1.0, slo_tpot_p99_s=0.1, input_len=64,
                      output_len=8, schedulers=(("static", 64),), serving={"prefix_caching": True})
    with pytest.raises(SpecError, match="continuous batching"):
        req.check()
