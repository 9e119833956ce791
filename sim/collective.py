"""Collective communication on a system's interconnect tiers: alpha-beta models.

Each tier has a per-chip, per-direction bandwidth ``B`` (times its achievable ``efficiency``), a
latency ``a`` and a topology. For a buffer of ``S`` bytes over ``p`` members of one tier:

=================  ==============================================================  ===========
collective         time                                                            source
=================  ==============================================================  ===========
ring allreduce     2 (p-1)/p * S/B + 2 (p-1) a                                     Patarasuk & Yuan 2009
tree allreduce     2 S/B + 2 ceil(log2 p) a  (double binary tree, pipelined)       Sanders et al. 2009 / NCCL
switch + INR       S/B + 2 a  (in-network reduction: each byte sent and received once)  NVLink SHARP
allgather / RS     (p-1)/p * S/B + (p-1) a   (S = the full, gathered buffer)       ring
alltoall (switch)  (p-1)/p * S/B + (p-1) a                                         pairwise exchange
alltoall (ring)    p/4 * S/B + (p-1) a       (bisection-bound, bidirectional ring)  bisection argument
sendrecv           S/B + a
=================  ==============================================================  ===========

NCCL picks the faster of ring and tree; so do we. On a ``fully_connected`` tier the bandwidth is
per link and each chip drives its p-1 links at once, so the (p-1)/p*S volume moves at (p-1)*B.
A torus or mesh is treated as a ring over the tier's fan-out (all dimensions' links together
giving the tier bandwidth), a documented simplification.

A group that spans several tiers runs hierarchically (as NCCL and ASTRA-sim do): reduce-scatter
inside the inner tier, the collective on 1/p_inner of the data across the outer tier, all-gather
inside the inner tier.

Collective library models (``library``; a serving stack's ``kernels.collectives``, docs/stacks.md)
-------------------------------------------------------------------------------------------------
``alpha-beta`` (default; the kernel-only model) is the table above. ``nccl`` prices all-reduce,
all-gather and reduce-scatter on a switched or fully connected tier the way NCCL's own tuner does
(src/graph/tuning.cc, :data:`NCCL`): for every algorithm x protocol it predicts

    time(alg, proto) = base(alg, proto) + hops(alg, p) x hop(link, alg, proto) + S / algbw(alg, proto)

and runs the pair with the smallest prediction, as ``ncclTopoGetAlgoTime`` and the selection in
enqueue.cc do. ``algbw`` is the tier's bus bandwidth ``B`` (x links on a fully connected tier) times
the protocol's fraction (LL: half the bus, capped at NCCL's LL ceiling for the architecture; LL128:
120/128 of each line is payload, 0.92; Simple: all of it) times the algorithm's bus-to-algorithm
ratio (ring all-reduce p / (2 (p-1)), ring all-gather/reduce-scatter p / (p-1), tree 1/2 with
NCCL's size-dependent correction, NVLS 5/6). ``hops``: ring all-reduce 2 (p-1), ring
all-gather/reduce-scatter p-1, tree 2 (p-1) inside a node (a chain) and 2 log2 p across nodes, NVLS
1. The pick uses NCCL's constants only; the chosen pair is then timed at this hardware's rates: the
tier's ``latency`` is the per-step latency of the link (no step is faster than it: ``max(hop, a)``)
and :data:`NCCL_RUNTIME` holds, per NVLink generation, where NCCL's runs are measured to differ from
its tuner (Ampere: fitted, see there). ``nccl-nvls`` adds NVLink SHARP (NVLS) on tiers with
``in_network_reduction`` and more than 2 members. ``custom-allreduce`` is vLLM's (and SGLang's)
custom all-reduce (:func:`custom_allreduce_time`, :data:`CUSTOM_AR`) for the all-reduces its code
takes, NCCL for the rest. Send/recv and all-to-all (NCCL runs them as point-to-point transfers,
which its tuner does not model) and ring/torus/mesh tiers (not NCCL fabrics) keep the alpha-beta
formulas.
"""

from __future__ import annotations

import math
import re

from hwmodels.arith import vmax, vmin, vwhere
from hwmodels.chip import System, Tier
from hwmodels.stack import COLLECTIVE_LIBRARIES

COLLECTIVES = ("allreduce", "allgather", "reducescatter", "alltoall", "sendrecv")
LIBRARIES = COLLECTIVE_LIBRARIES
PROTOCOLS = ("LL", "LL128", "Simple")

#: NCCL's tuning constants, from NVIDIA/nccl v2.26.2-1 (commit f44ac759fee12ecb3cc6891e9e739a000f66fd70,
#: the release PyTorch 2.7 wheels bundle, used by vLLM 0.10), file src/graph/tuning.cc. Latencies in
#: microseconds, one value per protocol (LL, LL128, Simple); None: that pair does not exist.
NCCL = {
    "source": "NVIDIA/nccl v2.26.2-1 (f44ac759), src/graph/tuning.cc",
    # baseLat (tuning.cc lines 120-123): fixed latency of one collective per algorithm x protocol
    "base_us": {"ring": (6.6, 14.0, 8.4), "tree": (6.8, 14.0, 8.4), "nvls": (None, None, 0.0)},
    # hwLat (lines 129-141): latency per step (hop) by link class, algorithm and protocol
    "hop_us": {
        "nvlink": {"ring": (0.6, 1.9, 3.4), "tree": (0.6, 1.25, 4.0), "nvls": (None, None, 25.0)},
        "pci": {"ring": (1.0, 2.5, 5.7), "tree": (1.0, 1.9, 4.0), "nvls": (None, None, None)},
        "net": {"ring": (2.7, 4.0, 14.0), "tree": (5.0, 8.5, 14.0), "nvls": (None, None, 18.0)},
    },
    # ring: LL carries 8 B of data per 16 B line (busBw x .5, line 256), LL128 120 of 128 B (x .92, line 257)
    "ring_bw": (0.5, 0.92, 1.0),
    # LL's ceiling (llMaxBws, lines 151-156) as a fraction of NCCL's own NVLink bus bandwidth:
    # Hopper 141 GB/s over 18 links x 20.6 GB/s (src/graph/topo.h SM90_NVLINK_BW) = 0.380
    # (Ampere 87.7 / (12 x 20) = 0.365, Blackwell 282 / (18 x 40.1) = 0.391)
    "ll_max": 0.38,
    # ... and by NVLink generation (the GPU architecture: llMaxBws' first column, single node, lines 151-156)
    "ll_max_by_gen": {3: 87.7 / (12 * 20.0), 4: 141.0 / (18 * 20.6), 5: 282.0 / (18 * 40.0)},
    # tree all-reduce: busBw x .92 (line 258), then LL / 3.8 and LL128 x 7/9 inside a node, x 120/128
    # across nodes (lines 259-260); algorithm bandwidth = bus / 2 (line 294)
    "tree_bw": 0.92,
    "tree_proto": (1 / 3.8, 7 / 9, 1.0),
    "tree_proto_net": (1 / 3.8, 120 / 128, 1.0),
    # treeCorrectionFactor (lines 524-528), by log2(bytes / 64) = 0..22
    "tree_correction": (
        (1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0, 1.0),
        (1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9, 1.0, 1.0),
        (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9, .9),
    ),
    # NVLS all-reduce: algorithm bandwidth = bus x 5/6 (line 293); NCCL enables NVLS only on more
    # than 2 GPUs (src/transport/nvls.cc line 157)
    "nvls_ratio": 5 / 6,
    "nvls_min_members": 3,
    # LL128 only where every hop is NVLink (pEnable &= typeIntra <= PATH_NVB, line ~431)
    "ll128_links": ("nvlink",),  # tuning.cc line 430
}
#: Where NCCL's runs differ from its tuner's prediction, by NVLink generation: {protocol: (fraction of the
#: tuner's bandwidth reached, per-step latency in us or None for NCCL's hwLat)}. The pair NCCL runs is
#: still the one its tuner picks (:func:`_nccl_time`); only its time changes.
#:
#: Ampere (NVLink 3): FITTED, not an NCCL constant. On 8 x A100 SXM (Vidur's NCCL all-reduce profiles,
#: docs/validation.md section 3) the time jumps where NCCL's tuner switches from LL128 to Simple (~6 MB
#: on 4 GPUs, ~24 MB on 8): below it the bus bandwidth is ~125-150 GB/s, not the tuner's 0.92 x 234;
#: above it Simple reaches the tier bandwidth with ~150-200 us of fixed time on 8 GPUs, not NCCL's
#: 8.4 + 14 x 3.4 us. Ampere is where NCCL runs Simple with P2P reads over NVLink (src/graph/paths.cc
#: lines 353-354: "Enable P2P Read for Ampere/NVLink only"; a pulled step waits a round trip), which
#: fits slower Simple steps; why LL128 falls short is not documented. The two values were fitted on
#: the TRAINING fold only (4 of 5 shape folds of the 4- and 8-GPU all-reduce rows; grid 0.05 and 2 us,
#: median |log error|, catalog tiers): LL128 at 0.65 of the tuner's bandwidth, Simple at 12 us per
#: step (its bandwidth kept: the catalog's 0.78 is a 1 GB+ all-reduce's). Hopper is left at NCCL's own
#: figures (within ~10% of Vidur's H100 rows); other generations and fabrics have no row.
NCCL_RUNTIME: dict = {
    3: {"LL128": (0.65, None), "Simple": (1.0, 12.0)},
}
#: vLLM's custom all-reduce (``custom-allreduce``), which vLLM and SGLang run instead of NCCL for small
#: tensor-parallel all-reduces inside one node. Sources: vllm-project/vllm
#: vllm/distributed/device_communicators/custom_all_reduce.py (CustomAllreduce: _SUPPORTED_WORLD_SIZES,
#: __init__ max_size=8192 * 1024, the "spans across nodes" and "more than two PCIe-only GPUs" refusals,
#: should_custom_ar: inp_size < max_size) and csrc/custom_all_reduce.cuh (commit c9eabec: start_sync /
#: end_sync, cross_device_reduce_1stage / _2stage, CustomAllreduce::allreduce's REDUCE_CASE choice);
#: SGLang copies both (python/sglang/srt/distributed/device_communicators/custom_all_reduce.py, "Adapted
#: from vllm v0.6.4.post1": _MAX_CAR_SIZE = 8192 * 1024, same world sizes; sgl-kernel's kernel).
CUSTOM_AR = {
    "source": "vllm-project/vllm custom_all_reduce.py + csrc/custom_all_reduce.cuh (c9eabec); SGLang's copy",
    "max_bytes": 8192 * 1024,  # should_custom_ar: inp_size < max_size (8 MiB), else NCCL
    "world_sizes": (2, 4, 6, 8),  # _SUPPORTED_WORLD_SIZES; other sizes fall back to NCCL
    # REDUCE_CASE: 2 GPUs always one-shot; fully connected: one-shot below 512 KiB up to 4 GPUs, below
    # 256 KiB up to 8, two-shot above
    "one_shot_below": ((4, 512 * 1024), (8, 256 * 1024)),
    "barriers": 2,  # one-shot: start_sync + end_sync<final>; two-shot: start_sync + end_sync (then kernel exit)
    # What one GPU's kernel pulls from its peers (bytes/s), MEASURED, by NVLink generation: the kernel runs
    # 36 blocks of 512 threads (allreduce(): block_limit = 36), far too few to fill NVLink. Public timings
    # of vLLM's kernel grow by one remote byte per this many seconds, alike for 2, 4 and 8 GPUs and for
    # one- and two-shot: H100 ~60 GB/s (sgl-project/sglang PR #2904, 2025-01-15, test_trt_reduce.py
    # without CUDA graphs: 2 GPUs 17.7 -> 26.6 us from 512 KiB to 1 MiB, 8 GPUs 24.1 -> 45.0 us from
    # 256 KiB to 1 MiB); A100 ~47 GB/s (sgl-project/sglang PR #2688, 2024-12-31: 2 GPUs 32.5 -> 55.3 us
    # from 1 to 2 MiB, 4 GPUs 31.3 -> 47.1 us from 512 KiB to 1 MiB). Other generations take the nearest
    # one measured; never faster than the tier's own bandwidth.
    "pull_bytes_per_s": {3: 47e9, 4: 60e9},
}
_NET_WORDS = ("infiniband", "ib", "roce", "ethernet", "gbe", "efa", "network")


def tier_numbers(t: Tier) -> tuple:
    """(latency a, achievable bandwidth B) of a tier as its file gives them."""
    return t.latency_s, t.bandwidth_bytes_per_s * (t.efficiency or 1.0)


def link_class(t: Tier) -> str:
    """NCCL's class of a tier's links (its hwLat row): ``pci`` where the tier's name or type says
    PCIe, ``net`` for a network between nodes (InfiniBand, RoCE, Ethernet, EFA), else ``nvlink``
    (NVLink and the other GPU-to-GPU fabrics: xGMI, NeuronLink, ...)."""
    words = re.split(r"[^a-z0-9]+", f"{t.name} {t.type or ''}".lower())
    if "pcie" in words or "pci" in words:
        return "pci"
    if any(w in _NET_WORDS or w.endswith("gbe") for w in words):
        return "net"
    return "nvlink"


def nvlink_generation(t: Tier) -> int | None:
    """The NVLink generation a tier's type names ("NVLink 3 + NVSwitch gen 2" -> 3), NCCL's stand-in for the
    GPU architecture (NVLink 2 Volta, 3 Ampere, 4 Hopper, 5 Blackwell: tuning.cc's compCapIndex); None
    for other fabrics."""
    m = re.search(r"nvlink[\s-]*(\d)", f"{t.type or ''} {t.name}".lower())
    return int(m.group(1)) if m else None


def _nccl_table(op: str, nbytes: float, p: int, t: Tier, B, library: str, a, runtime: bool) -> dict:
    """{(algorithm, protocol): seconds}: NCCL's tuner prediction (``runtime`` False) or the time the
    run takes on this hardware (``runtime`` True: :data:`NCCL_RUNTIME` where it has a row for the
    tier's NVLink generation), every step at least ``a``."""
    n = NCCL
    cls = link_class(t)
    gen = nvlink_generation(t) if cls == "nvlink" else None
    run = NCCL_RUNTIME.get(gen, {}) if runtime else {}
    out = {}
    ar = op == "allreduce"
    ll_max = n["ll_max_by_gen"].get(gen, n["ll_max"]) * B
    for i, proto in enumerate(PROTOCOLS):
        if proto == "LL128" and cls not in n["ll128_links"]:
            continue
        hop = n["hop_us"][cls]
        frac, step_us = run.get(proto, (1.0, None))
        # ring: 2 (p-1) steps for all-reduce, p-1 for all-gather / reduce-scatter
        steps = 2 * (p - 1) if ar else p - 1
        bus = vmin(B * n["ring_bw"][i], ll_max) if proto == "LL" else B * n["ring_bw"][i]
        lat = n["base_us"]["ring"][i] * 1e-6 + steps * vmax((step_us or hop["ring"][i]) * 1e-6, a)
        out[("ring", proto)] = lat + nbytes / (bus * frac * p / steps)
        if not ar:
            continue
        # tree (all-reduce only): a chain inside a node, a double binary tree across nodes
        hops = 2 * math.ceil(math.log2(p)) if cls == "net" else 2 * (p - 1)
        tfrac = (n["tree_proto_net"] if cls == "net" else n["tree_proto"])[i]
        bus = B * n["tree_bw"] * tfrac
        if proto == "LL":
            bus = vmin(bus, ll_max)
        k = int(math.log2(nbytes // 64)) if nbytes >= 64 else -1
        corr = n["tree_correction"][i][k] if 0 <= k < len(n["tree_correction"][i]) else 1.0
        lat = n["base_us"]["tree"][i] * 1e-6 + hops * vmax(hop["tree"][i] * 1e-6, a)
        out[("tree", proto)] = lat + nbytes / (bus * 0.5 * corr)
        nvls = hop["nvls"][i]
        if (proto == "Simple" and library == "nccl-nvls" and t.in_network_reduction and t.topology == "switch"
                and nvls is not None and p >= n["nvls_min_members"]):
            out[("nvls", proto)] = n["base_us"]["nvls"][i] * 1e-6 + vmax(nvls * 1e-6, a) + nbytes / (B * n["nvls_ratio"])
    return out


def nccl_candidates(op: str, nbytes: float, p: int, t: Tier, B, library: str = "nccl", a=0.0) -> dict:
    """{(algorithm, protocol): seconds} NCCL's tuner predicts for ``op`` (allreduce, allgather or
    reducescatter) of ``nbytes`` among ``p`` members of tier ``t`` with bus bandwidth ``B`` (bytes/s)
    and per-step latency floor ``a`` (seconds; each a number or an array). :data:`NCCL` holds the
    constants."""
    return _nccl_table(op, nbytes, p, t, B, library, a, runtime=False)


def _nccl_time(op: str, nbytes: float, p: int, t: Tier, a, B, library: str):
    """The run time of the pair NCCL's tuner picks: the pair with the smallest prediction from NCCL's
    own constants (what NCCL knows), timed at this hardware's rates (every step at least the tier's
    latency ``a``; :data:`NCCL_RUNTIME` where NCCL's runs differ from its tuner)."""
    pick = _nccl_table(op, nbytes, p, t, B, library, 0.0, runtime=False)
    run = _nccl_table(op, nbytes, p, t, B, library, a, runtime=True)
    best_pick = best = None
    for k, v in pick.items():
        if best is None:
            best_pick, best = v, run[k]
            continue
        better = v < best_pick
        best_pick, best = vwhere(better, v, best_pick), vwhere(better, run[k], best)
    return best


def custom_allreduce_time(nbytes: float, p: int, t: Tier, a, B):
    """Seconds for vLLM's custom all-reduce of ``nbytes`` among ``p`` GPUs of tier ``t`` (per-step
    latency ``a``, per-direction bandwidth ``B`` of one link), or None where vLLM runs NCCL instead
    (:data:`CUSTOM_AR`: 8 MiB and above, a world size other than 2/4/6/8, more than 2 GPUs without
    NVLink between every pair, a network tier).

    Every rank reads its peers' buffers over NVLink P2P and reduces them itself:

    - one-shot (``cross_device_reduce_1stage``): each rank reads the whole buffer from each of its
      p-1 peers: (p-1) S bytes in, behind one barrier, then a final one: ``2 a + (p-1) S / B_in``;
    - two-shot (``cross_device_reduce_2stage``): a reduce-scatter (each rank reads its 1/p from the
      p-1 peers), a barrier, an all-gather (reads the p-1 other reduced parts): ``2 a + 2 (p-1)/p S / B_in``.

    ``B_in`` is what one GPU pulls: ``B`` on a switch, ``(p-1) B`` over the p-1 direct links of a fully
    connected tier, at most what the kernel's 36 blocks reach (``CUSTOM_AR["pull_bytes_per_s"]``,
    measured). Each barrier is one P2P flag write and a spin on it: the tier's step latency.
    """
    c = CUSTOM_AR
    cls = link_class(t)
    if p not in c["world_sizes"] or nbytes >= c["max_bytes"] or cls == "net":
        return None
    if p > 2 and (nvlink_generation(t) is None or t.topology not in ("switch", "fully_connected")):
        return None  # "not supported on more than two PCIe-only GPUs"
    b_in = B * (p - 1) if t.topology == "fully_connected" else B
    pulls = c["pull_bytes_per_s"]
    gen = nvlink_generation(t)
    near = min(pulls, key=lambda g: (abs(g - gen), -g)) if gen is not None else min(pulls)
    b_in = vmin(b_in, pulls[near])
    one_shot = p == 2 or any(p <= w and nbytes < lim for w, lim in c["one_shot_below"])
    volume = (p - 1) * nbytes if one_shot else 2 * (p - 1) / p * nbytes
    return c["barriers"] * a + volume / b_in


def tier_time(op: str, nbytes: float, p: int, t: Tier, numbers=tier_numbers, library: str | None = None):
    """Seconds for one collective of ``nbytes`` among ``p`` members of tier ``t``.

    ``numbers(t)`` gives the tier's (latency, achievable bandwidth): its file's values by default;
    the vectorized cost path passes arrays (one value per design point). ``library``: None or
    ``alpha-beta`` (the formulas of the module docstring), ``nccl`` or ``nccl-nvls`` (NCCL's
    algorithm x protocol model where it applies; see the module docstring).
    """
    if p <= 1 or nbytes <= 0:
        return 0.0
    a, B = numbers(t)
    links = (p - 1) if t.topology == "fully_connected" else 1
    if library == "custom-allreduce" and op == "allreduce":
        custom = custom_allreduce_time(nbytes, p, t, a, B)
        if custom is not None:
            return custom
    if (library in ("nccl", "nccl-nvls", "custom-allreduce") and op in ("allreduce", "allgather", "reducescatter")
            and t.topology in ("switch", "fully_connected")):
        return _nccl_time(op, nbytes, p, t, a, B * links, library)
    if op == "sendrecv":
        return nbytes / B + a
    if op == "allreduce":
        if t.in_network_reduction and t.topology == "switch":
            return nbytes / B + 2 * a
        ring = 2 * (p - 1) / p * nbytes / (B * links) + 2 * (p - 1) * a
        if t.topology == "fully_connected":
            return ring
        tree = 2 * nbytes / B + 2 * math.ceil(math.log2(p)) * a
        return vmin(ring, tree)
    if op in ("allgather", "reducescatter"):
        return (p - 1) / p * nbytes / (B * links) + (p - 1) * a
    if op == "alltoall":
        if t.topology in ("ring", "torus", "mesh"):
            return max(p / 4, (p - 1) / p) * nbytes / B + (p - 1) * a
        return (p - 1) / p * nbytes / (B * links) + (p - 1) * a
    raise ValueError(f"unknown collective '{op}'; known: {', '.join(COLLECTIVES)}")


def collective_time(system: System, op: str, nbytes: float, group_size: int, numbers=tier_numbers,
                    library: str | None = None) -> tuple:
    """Seconds for a collective among ``group_size`` consecutive chips, and the tiers it used.

    A group of one costs nothing. Raises ValueError if the group is larger than the system.
    ``numbers`` and ``library`` as in :func:`tier_time`.
    """
    if group_size <= 1 or nbytes <= 0:
        return 0.0, ""
    if group_size > max(system.count, 1) or not system.tiers:
        raise ValueError(f"a {op} among {group_size} chips needs a system of at least {group_size} chips; "
                         f"{system.name} has {system.count}")
    spans = system.tiers_for_group(group_size)
    names = "+".join(t.name for t, _ in spans)
    if len(spans) == 1 or op == "sendrecv":
        t, p = spans[-1] if op == "sendrecv" else spans[0]
        return (tier_time(op, nbytes, p if op != "sendrecv" else 2, t, numbers, library),
                t.name if op == "sendrecv" else names)
    # hierarchical: inner tier first, data shrinks by the inner fan-out on the way out. A group across
    # nodes is NCCL's even under vLLM ("custom allreduce is disabled because this process group spans
    # across nodes")
    if library == "custom-allreduce":
        library = "nccl"
    inner, p0 = spans[0]
    rest = System(system.name, system.source, system.chip, math.ceil(group_size / p0),
                  tuple(t for t in system.tiers[1:]))
    if op == "allreduce":
        outer, _ = collective_time(rest, "allreduce", nbytes / p0, math.ceil(group_size / p0), numbers, library)
        return (tier_time("reducescatter", nbytes, p0, inner, numbers, library) + outer
                + tier_time("allgather", nbytes, p0, inner, numbers, library)), names
    if op in ("allgather", "reducescatter"):
        outer, _ = collective_time(rest, op, nbytes / p0, math.ceil(group_size / p0), numbers, library)
        return tier_time(op, nbytes, p0, inner, numbers, library) + outer, names
    if op == "alltoall":
        # the share of data that leaves the inner group crosses the outer tier
        q = math.ceil(group_size / p0)
        inner_part = tier_time("alltoall", nbytes / q, p0, inner, numbers, library)
        outer, _ = collective_time(rest, "alltoall", nbytes, q, numbers, library)
        return inner_part + outer, names
    raise ValueError(f"unknown collective '{op}'")
