"""Traces: the shipped Azure traces, the plain layout, replay, and every bad file's error message."""

from __future__ import annotations

import gzip
import hashlib
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import workloads.trace as trace_mod
from hwmodels.errors import SpecError
from workloads.scenario import Replay, TraceArrivals
from workloads.trace import AZURE_2023_ATTRIBUTION, BUILTIN_TRACES, Trace, load_trace

BAD = Path(__file__).resolve().parents[1] / "data" / "bad" / "traces"

# row counts and sha256 of the original CSVs (workloads/data/traces/README.md)
SHIPPED = {
    "azure-code-2023": (8819, "54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6"),
    "azure-conv-2023": (19366, "2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8"),
}


def _write(tmp_path, name, text) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ---- shipped traces


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_trace_loads(name):
    rows, _ = SHIPPED[name]
    tr = load_trace(name)
    assert len(tr) == rows and tr.layout == "azure" and tr.name == name
    assert tr.arrival_s[0] == 0.0
    assert (np.diff(tr.arrival_s) >= 0).all()
    assert 3000 < tr.duration_s < 3700  # about one hour
    assert tr.input_tokens.min() >= 1 and tr.output_tokens.min() >= 1
    assert tr.warnings == ()
    assert "CC-BY 4.0" in tr.attribution and "Splitwise" in tr.attribution and "b469a113" in tr.attribution
    assert tr.attribution == AZURE_2023_ATTRIBUTION


def test_shipped_trace_rates_and_first_rows():
    code, conv = load_trace("azure-code-2023"), load_trace("azure-conv-2023")
    assert code.rate_rps == pytest.approx(2.57, abs=0.01)
    assert conv.rate_rps == pytest.approx(5.53, abs=0.01)
    # first rows of the originals: 18:17:03.9799600,4808,10 then 18:17:04.0319600,3180,8
    assert code.input_tokens[:2].tolist() == [4808, 3180] and code.output_tokens[:2].tolist() == [10, 8]
    assert code.arrival_s[1] == pytest.approx(0.052, abs=1e-9)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_file_matches_original_checksum(name):
    data = resources.files("workloads.data.traces").joinpath(BUILTIN_TRACES[name]).read_bytes()
    assert hashlib.sha256(gzip.decompress(data)).hexdigest() == SHIPPED[name][1]


def test_data_is_packaged_and_documented():
    pkg = resources.files("workloads.data.traces")
    readme = pkg.joinpath("README.md").read_text()
    for name, (_, sha) in SHIPPED.items():
        assert pkg.joinpath(BUILTIN_TRACES[name]).is_file()
        assert sha in readme and name in readme
    assert "CC-BY 4.0" in readme and "Splitwise" in readme


def test_never_reads_shared_folder():
    src = Path(trace_mod.__file__).read_text()
    assert "/work/shared" not in src


def test_load_returns_the_whole_trace():
    """Every row of the shipped conversation trace loads (its speed: benchmarks/bench_inputs.py)."""
    assert len(load_trace("azure-conv-2023")) == 19366


def test_limit_reads_first_rows():
    tr = load_trace("azure-conv-2023", limit=100)
    assert len(tr) == 100
    full = load_trace("azure-conv-2023")
    assert tr.input_tokens.tolist() == full.input_tokens[:100].tolist()
    with pytest.raises(SpecError, match="limit"):
        load_trace("azure-conv-2023", limit=0)


def test_summary():
    s = load_trace("azure-code-2023").summary()
    assert s["num_requests"] == 8819
    assert s["input_tokens"]["max"] == 7437 and s["output_tokens"]["min"] == 6
    assert s["input_tokens"]["p50"] <= s["input_tokens"]["p90"] <= s["input_tokens"]["p99"]
    assert s["interarrival_cv"] > 0


# ---- views and replay


def test_frame_requests_and_replay_agree():
    tr = load_trace("azure-conv-2023", limit=500)
    df = tr.to_frame()
    assert list(df.columns) == ["request_id", "arrival_s", "input_tokens", "output_tokens"]
    reqs = list(tr.requests())
    assert [r.input_tokens for r in reqs] == df.input_tokens.tolist()
    assert [r.arrival_s for r in reqs] == df.arrival_s.tolist()
    replay = tr.scenario().to_frame(seed=123)
    for c in df.columns:
        assert np.array_equal(replay[c].to_numpy(), df[c].to_numpy())


def test_replay_speedup_rate_and_loop():
    tr = load_trace("azure-code-2023")
    fast = tr.scenario(speedup=4.0).to_frame()
    assert np.allclose(fast.arrival_s, tr.arrival_s / 4)
    at = tr.scenario(rate_rps=20.0)
    assert isinstance(at.arrivals, TraceArrivals) and isinstance(at.input_tokens, Replay)
    t = at.to_frame().arrival_s.to_numpy()
    assert (t.size - 1) / t[-1] == pytest.approx(20.0, rel=1e-9)
    looped = tr.scenario(loop=True, num_requests=len(tr) + 10).to_frame()
    assert len(looped) == len(tr) + 10
    assert looped.input_tokens.iloc[len(tr):].tolist() == tr.input_tokens[:10].tolist()
    assert (np.diff(looped.arrival_s) >= 0).all()
    short = tr.scenario(duration_s=60.0).to_frame()
    assert short.arrival_s.max() < 60.0 and len(short) == (tr.arrival_s < 60).sum()
    with pytest.raises(SpecError, match="only 8819 arrivals"):
        tr.scenario(num_requests=len(tr) + 1)
    with pytest.raises(SpecError, match="not both"):
        tr.scenario(2.0, rate_rps=3.0)


def test_empirical_from_trace():
    tr = load_trace("azure-conv-2023")
    x = tr.output_dist().sample(np.random.default_rng(0), 1000)
    assert set(x.tolist()) <= set(tr.output_tokens.tolist())


# ---- plain layout and loader details


def test_plain_layout(tmp_path):
    p = _write(tmp_path, "mine.csv", "arrival_s,input_tokens,output_tokens\n0.5,100,10\n1.25,200,20\n2,300,30\n")
    tr = load_trace(p)
    assert tr.layout == "plain" and tr.name == "mine" and tr.attribution == ""
    assert tr.arrival_s.tolist() == [0.5, 1.25, 2.0]  # kept as given, not shifted
    assert tr.input_tokens.tolist() == [100, 200, 300] and tr.output_tokens.tolist() == [10, 20, 30]
    assert load_trace(str(p)).arrival_s.tolist() == [0.5, 1.25, 2.0]


def test_plain_layout_gzip_case_spaces_extra_columns(tmp_path):
    p = tmp_path / "t.csv.gz"
    p.write_bytes(gzip.compress(b" Input_Tokens , arrival_s,note,OUTPUT_TOKENS\n5,0,hello,7\n6,1.5,,8\n"))
    tr = load_trace(p)
    assert tr.arrival_s.tolist() == [0.0, 1.5] and tr.input_tokens.tolist() == [5, 6]
    assert tr.output_tokens.tolist() == [7, 8]


def test_azure_layout_user_file(tmp_path):
    p = _write(tmp_path, "az.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
               "2023-11-16 18:17:03.5,10,1\n2023-11-16 18:17:05,20,2\n")
    tr = load_trace(p)
    assert tr.arrival_s.tolist() == [0.0, 1.5] and tr.layout == "azure"


def test_unsorted_rows_are_sorted_with_warning(tmp_path):
    p = _write(tmp_path, "u.csv", "arrival_s,input_tokens,output_tokens\n"
               "0,1,1\n3,4,4\n1,2,2\n2,3,3\n")
    tr = load_trace(p)
    assert tr.arrival_s.tolist() == [0, 1, 2, 3]
    assert tr.input_tokens.tolist() == [1, 2, 3, 4]  # rows kept together
    assert len(tr.warnings) == 1
    assert "not sorted by arrival time" in tr.warnings[0] and "3 of 4 rows moved" in tr.warnings[0]
    assert "u.csv" in tr.warnings[0]


def test_blank_lines_skipped_and_line_numbers_kept(tmp_path):
    p = _write(tmp_path, "b.csv", "arrival_s,input_tokens,output_tokens\n\n0,1,1\n\n1,2,x\n\n")
    with pytest.raises(SpecError) as e:
        load_trace(p)
    (prob,) = e.value.problems
    assert (prob.line, prob.col, prob.path) == (5, 3, "output_tokens")
    assert prob.file == str(p)
    p = _write(tmp_path, "ok.csv", "arrival_s,input_tokens,output_tokens\n\n0,1,1\n\n1,2,3\n\n")
    assert len(load_trace(p)) == 2


def test_quoted_fields_line_numbers(tmp_path):
    p = _write(tmp_path, "q.csv", 'arrival_s,input_tokens,output_tokens\n"0",1,1\n"1","0",2\n')
    with pytest.raises(SpecError) as e:
        load_trace(p)
    assert (e.value.problems[0].line, e.value.problems[0].col) == (3, 2)


def test_missing_file_and_bad_name(tmp_path):
    with pytest.raises(SpecError, match="no such trace file.*azure-code-2023"):
        load_trace(tmp_path / "nope.csv")
    with pytest.raises(SpecError, match="no such trace file"):
        load_trace("azure-code-2099")


def test_from_arrays():
    tr = Trace.from_arrays([0.0, 2.0, 1.0], [1, 3, 2], [5, 7, 6], name="x")
    assert tr.arrival_s.tolist() == [0.0, 1.0, 2.0] and tr.input_tokens.tolist() == [1, 2, 3]
    assert tr.warnings and not tr.arrival_s.flags.writeable
    with pytest.raises(SpecError) as e:
        Trace.from_arrays([0.0, -1.0], [0, 3], [5, float("nan")])
    msg = str(e.value)
    assert "arrival_s[1]: negative arrival time" in msg and "input_tokens[0]" in msg
    assert "output_tokens[1]: NaN" in msg


# ---- bad files: every file in tests/data/bad/traces has its expected fragments in expect.txt


def _expectations() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (BAD / "expect.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.match(r"^(\S+?):\s(.+)$", line)
        assert m, f"malformed expect.txt line: {line!r}"
        out.setdefault(m.group(1), []).append(m.group(2))
    return out


EXPECT = _expectations()


def test_every_bad_file_has_an_expectation():
    files = {p.name for p in BAD.glob("*.csv")}
    assert files == set(EXPECT), f"no expectation for {files - set(EXPECT)}; no file for {set(EXPECT) - files}"


@pytest.mark.parametrize("fname", sorted(EXPECT))
def test_bad_file(fname):
    with pytest.raises(SpecError) as e:
        load_trace(BAD / fname)
    msg = str(e.value)
    for fragment in EXPECT[fname]:
        assert fragment in msg, f"{fragment!r} not in:\n{msg}"
    assert all(p.file and p.file.endswith(fname) for p in e.value.problems)


def test_many_bad_rows_listed_up_to_limit():
    with pytest.raises(SpecError) as e:
        load_trace(BAD / "many_bad_rows.csv")
    assert len(e.value.problems) == trace_mod.MAX_LISTED + 1
