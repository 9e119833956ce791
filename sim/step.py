"""Step pricing for the serving simulator: a batch composition -> seconds, joules, FLOPs, bytes.

The serving simulator asks one question many times: how long does one iteration take for this
batch (each request's new tokens and the context it already has)? ``StepCoster`` answers it with
the same graph builder and the same cost model as ``llmsim predict``, so that a request alone in
the system sees exactly the static predictor's TTFT and TPOT.

Serving runs price millions of steps whose exact shapes rarely repeat (every decode step grows
each context by one), so a memo keyed by the whole batch hits seldom. The coster therefore
splits a step the way the graph builder builds it:

- every op except the attention core depends on the batch only through its token count ``T``
  and request count ``R`` (GEMMs, norms, collectives over ``T`` rows; LM head and sampling over
  ``R`` rows). Their summed cost is memoized by ``(T, R)``, priced once from a full graph of the
  first batch with that key, or, from the second new ``T`` of a block of BLOCK token counts, from
  the block: the ops that depend on T alone priced for the whole block in one vectorized evaluation
  (``_from_block``: workloads.stepops.other_ops over an array of token counts, priced by
  CostModel.over_steps), their sums continued by the ops that depend on R alone (the LM head and
  sampling, last in a step), priced once per R;
- MLA models also have ops that depend on the step's prefill/decode split (kv_b_proj over the
  prefill requests' new and cached rows, the absorbed q/v GEMMs over the decodes:
  workloads.stepops.mla_split_ops). Their sums are kept per side's shape (``_side``: (kv_rows,
  cached) or the decode count, priced by the same cost model, at most MAX_SIDES) and added to the
  (T, R) part; the sum is memoized under (T, R, kv_rows, cached, decodes) (``_from_sides``);
- under a block-scaled scheme, the activation quantizations whose input the attention core or a split op
  wrote (o_proj's, after the attention core or MLA's v_absorb; MLA's kv_b_proj's, after rope: their fresh
  bytes, workloads.graph._mark_fresh, cross the parts) are cut ops (workloads.stepops.cut_ops): built from
  the step's own attention block by the builder and marked fresh by the same rule. An MLA step's are priced
  once per new (T, R, split) key and added to its part (``_cut``); a model without MLA has o_proj's alone,
  which depends on T alone (the attention core's output), priced with the block's other T-only ops
  (``_price_block``). Under the naive attention kernel (whose
  written scores o_proj's quantization finds in the cache) they depend on every request: no part is
  kept then, every step is a whole graph (workloads.stepops.parts_exact);
- the attention core (one op per layer kind) depends on every request's (new, context) and is
  built and priced fresh for each batch by the same builder code and the same cost model.

The step's cost is then combined exactly as :func:`sim.estimate.combine` does (sum of op times
per stage; collectives added or overlapped; x pp stages), so ``step(seqs)`` equals
``estimate(build_graph(...))`` to float rounding (tests/unit/test_serving_step.py pins it). Steps of
a few requests holding a prefill or a chunk are additionally memoized by their whole shape (pure
decodes are not: their contexts grow every step). Memory is bounded: 20,000 whole shapes, 100,000
(T, R) keys (and (T, R, split) keys, cut ops included), 20,000 MLA split sides, the cost model's per-op table
cleared past 20,000 entries.

The one-time parts (a block's sums, a request count's head ops, the split index) are functions of the
context alone: the cost model's context key (hardware content, options, tp, placement: the shared op
memo's key, sim/costmemo.py) and the model, quantization and parallelism. They are kept per context in
the process (``_PARTS``, bounded) and reused by the next coster of that context (a planner's or a sweep's
runs of many fleets of one chip and model). Each coster still decides, as before, which (T, R) parts it
takes from a block and which from a whole graph (its own ``_blocks`` and ``_heads``), so a run after
others gives the same numbers as a run in a fresh process (tests/unit/test_serving_step.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from itertools import accumulate

from numpy import ndarray as _NDARRAY

from hwmodels.chip import System
from sim.cost import CostModel, CostOptions
from sim.estimate import estimate, stage_time, step_kernels, totals


#: context -> {"split": index, "blocks": {tb: block}, "heads": {R: head}}: the one-time parts shared by costers
_PARTS: dict = {}
#: contexts kept, and blocks (5 x BLOCK floats, ~10 kB: 10 MB) and heads (~300 bytes: 6 MB) kept over all
#: of them, before all are dropped
MAX_PART_CONTEXTS = 64
MAX_SHARED_BLOCKS = 1_000
MAX_SHARED_HEADS = 20_000
_held = [0, 0]  # blocks, heads held in _PARTS


def shared_parts_clear() -> None:
    """Forget every shared one-time part (the next coster of each context prices its own again)."""
    _PARTS.clear()
    _held[0] = _held[1] = 0


@dataclass(frozen=True)
class StepCost:
    time_s: float
    energy_j: float  # all chips of the replica
    flops: float  # all chips of the replica
    bytes_main: float  # all chips of the replica
    kernels: float = 0.0  # kernel launches of the step (all pipeline stages)


class StepCoster:
    """Prices iterations of one replica: ``step(seqs)`` with seqs = ((new_tokens, context_before), ...)."""

    def __init__(
        self,
        model,
        system: System,
        quant="bf16",
        parallel=None,
        options: CostOptions = CostOptions(),
        attention_kernel: str = "auto",
        resident_bytes: float | None = None,
        max_memo: int = 20_000,
        memo_max_requests: int = 8,
        stack=None,
    ):
        from hwmodels.stack import load_stack
        from workloads import Parallelism, Quantization, load_model
        from workloads.parallel import stage_layers
        from workloads.stepops import parts_exact

        self.stack = load_stack(stack)  # wall time of a step = stack.step_time(kernel time, ...)
        self.spec = load_model(model) if not hasattr(model, "layers") else model
        # the scheme as build_graph runs it (fp8 on a block-FP8 checkpoint runs its blocks): other_ops and
        # attention_ops take it as given, so a step's parts and its whole graph see the same ops
        self.quant = Quantization.parse(quant).for_checkpoint(self.spec.checkpoint_quant)
        self.parallel = parallel or Parallelism()
        self.system = system if isinstance(system, System) else System.single(system)
        self.options = options = self.stack.cost_options(options)
        self.attention_kernel = attention_kernel
        self.chips = self.parallel.tp * self.parallel.pp
        self.pp = self.parallel.pp
        self.cm = CostModel(self.system, options, resident_bytes=resident_bytes or 0.0, tp=self.parallel.tp)
        self._idle_w = float(self.cm.idle) * self.chips  # the replica's idle power (0 W where the chip gives none)
        # a unit's rate for a dtype is fixed for the chip and options: look it up once (same values)
        self.cm._rate = functools.lru_cache(maxsize=None)(self.cm._rate)
        self._memo: dict = {}
        self._max_memo = max_memo
        self._memo_max_requests = memo_max_requests
        self._max_op_memo = 20_000
        self._max_base = 100_000  # (T, R) entries, ~500 bytes each with the kernel count
        self._base: dict = {}
        self._base_kernels: dict = {}  # (T, R) key -> kernel launches of the non-attention ops
        kinds = {k.tag: k for k in self.spec.layer_kinds}
        self._stage = tuple((kinds[t], c) for t, c in stage_layers(self.spec, self.pp))
        self._mla = self.spec.attention == "mla"
        # the parts of a step depend on it through (T, R) and MLA's split only (not under a block-scaled scheme
        # with the naive attention kernel: workloads.stepops.parts_exact; then every step is a whole graph)
        self._exact = parts_exact(self.quant, attention_kernel)
        # block-scaled: the activation quantizations that read what the attention core or a split op wrote
        # (workloads.stepops.cut_ops) are priced per (T, R, split) key from the step's own neighbours (_cut)
        self._cuts = self.quant.block_scaled
        # MLA: the ops that depend on the prefill/decode split (kv_b_proj, the absorbed GEMMs:
        # workloads.stepops.mla_split_ops) priced apart, once per side's shape (_side), and the rest by
        # (T, R) as for other models
        self._apart = self._mla and self._exact
        self._sides: dict = {}  # (kv_rows, cached, decodes), one side's: -> (its split ops' sums, kernels)
        self._split_names = None  # the names of the split ops (a whole graph's (T, R) part leaves them out)
        self._acm = None  # the cost model over step arrays (decode_steps), made when first needed
        # (T, R) parts priced a block of BLOCK token counts at a time (_from_block): where every op but
        # the attention core (and MLA's split ops, block-scaled schemes' cut ops) depends on the batch only through
        # T and R (no pipeline stages, whose stage layers differ; expert parallelism's busiest rank is priced per
        # token count of the block, workloads.routing.expected_max_load; collectives once per distinct size of the
        # block: CostModel._collective)
        self._heads = {}  # R -> the prices of the ops that depend on R (_price_head)
        self._split_at = None  # where those ops start in other_ops (_split)
        self._blocks = {} if (self.parallel.pp == 1 and self._exact) else None
        self.blocks = 0  # token-count blocks used (priced here, or priced by an earlier coster: blocks_reused)
        self.blocks_reused = 0
        self.heads_reused = 0  # request counts' head ops priced by an earlier coster of the same context
        self._spec_key = None  # (model, quantization, parallelism) as text, made when first needed (_shared)
        self._ahead = {}  # runs priced ahead (decode_steps): sorted (context, stay) pairs -> figures
        self.ahead_hits = 0  # decode_steps calls answered from them
        self.calls = 0
        self.misses = 0  # steps not answered by the whole-shape memo
        self.graph_builds = 0  # full graphs built (first batch of each (T, R) key)

    # ---- public ---------------------------------------------------------------------------
    def step(self, seqs) -> StepCost:
        """Cost of one iteration; ``seqs`` is a tuple of (new_tokens, context_before) per request."""
        self.calls += 1
        key = seqs if type(seqs) is tuple else tuple(seqs)
        # whole shapes of a few requests with a prefill or a chunk (a replayed or looped trace repeats
        # them); a pure decode's contexts grow every step, so its exact shape seldom comes back
        small = len(key) <= self._memo_max_requests and any(n != 1 or c == 0 for n, c in key)
        if small:
            hit = self._memo.get(key)
            if hit is not None:
                return hit
        self.misses += 1
        T = 0
        for n, _ in key:
            T += n
        R = len(key)
        bkey = (T, R) if not self._mla else (T, R) + self._mla_key(key)
        base = self._base.get(bkey)
        if base is None:
            if self._apart:
                base = self._from_sides(bkey, key)
            elif self._blocks is not None:
                base = self._from_block(T, R)
        if base is None:
            sc = self._wall(self._full(key, bkey), key, T == R)
        else:  # (one StepCost, the wall time applied to the sums: what _wall(_decomposed(...)) gives)
            sc = self._walled(*self._with_attention(self._attention_ops(key), base, self._base_kernels.get(bkey, 0),
                                                    self.cm._price), R, T == R)
        if small and len(self._memo) < self._max_memo:
            self._memo[key] = sc
        return sc

    def exact(self, seqs) -> StepCost:
        """The step priced from its whole graph (no decomposition, no memo): the reference."""
        return self._wall(self._step_cost(self._graph_cost(tuple(seqs))), tuple(seqs))

    def _graph_cost(self, key):
        """The step's whole graph (the batch ``key`` of (tokens, context) pairs) priced by the cost model."""
        from workloads import Batch, build_graph

        g = build_graph(
            self.spec,
            Batch(key),
            quant=self.quant,
            parallel=self.parallel,
            attention_kernel=self.attention_kernel,
            fused=self.options.fused,
            cache=False,
        )
        return estimate(g, self.system, self.options, model=self.cm)

    def _step_cost(self, gc) -> StepCost:
        """A graph's cost as one step of the replica (energy, FLOPs and bytes over all its chips)."""
        ch = self.chips
        return StepCost(gc.time_s, gc.energy_j * ch, gc.flops * ch, gc.bytes_main * ch, step_kernels(gc))

    @property
    def memo_hit_rate(self) -> float:
        """Share of steps priced without building their whole graph (shape or (T, R) memo)."""
        return (self.calls - self.graph_builds) / self.calls if self.calls else 0.0

    @property
    def shape_hit_rate(self) -> float:
        """Share of steps answered by the whole-shape memo."""
        return (self.calls - self.misses) / self.calls if self.calls else 0.0

    def decode_steps(self, contexts, steps: int, stays=None, ahead=()):
        """``steps`` successive pure-decode steps of the same requests, whose contexts before the first
        step are ``contexts`` (each grows by one token per step): (time_s, energy_j, flops, bytes_main)
        arrays over the steps, or None when the (T, R) memo is full. Step k equals
        ``step(tuple((1, c + k) for c in contexts))``: the non-attention ops come from the same (T, R)
        memo, the attention ops of all steps are built by the graph builder over a SeqArrays and
        priced in one vectorized evaluation of the same cost formulas (CostModel.over_steps); the sums
        are taken in the same order as ``_decomposed`` (tests/unit/test_decode_runs.py).

        ``stays`` (optional, one per request, every one >= 1): request i takes part in steps
        k < stays[i] only (it finishes in step stays[i] - 1 and leaves): step k then equals
        ``step(tuple((1, c + k) for c, n in zip(contexts, stays) if n > k))``, each step's (T, R) part
        from its own request count; the steps' attention ops are still one evaluation (absent
        requests add nothing: ``SeqArrays`` with a per-step count; an MLA model's absorbed GEMMs, whose
        shapes hold the request count, are in each stretch's (T, R, split) part, and its absent requests
        are on the decode side: ``SeqArrays.split``).

        ``ahead``: runs the caller expects next, ``(contexts, stays, steps)`` each: their steps are
        priced in the same evaluation (rows of the same arrays: each step's figures are elementwise)
        and kept until the next evaluation; a later call for the same requests (the same (context,
        stay) pairs, in any order: a step's figures depend on its requests' sums and maximum only) and
        at most that many steps is answered from them (``ahead_hits``). A run ahead whose (T, R) parts
        are not all known yet is left out (it is priced when it comes). ``ahead`` may be a function
        giving them, called only when this call is not answered so."""
        import numpy as np

        from workloads.graph import SeqArrays

        if stays is not None and self._ahead:
            got = self._ahead.get(tuple(sorted(zip(contexts, stays))))
            if got is not None and len(got[0]) >= steps:
                self.ahead_hits += 1
                return tuple(v[:steps] for v in got)
        if callable(ahead):  # made only when this call prices (an answered call prices nothing ahead)
            ahead = ahead()
        parts = []  # (contexts, stays, steps, [(first step, end, requests, base + kernels)]) per run
        for j, (ctx, sty, K) in enumerate(((contexts, stays, steps),) + tuple(ahead)):
            bases = []
            for k, e, r in _stretches(len(ctx), sty, K):
                bkey = self._decode_key(r)
                base = self._base.get(bkey)
                if base is None and j == 0:
                    # price that step's whole graph and remember its non-attention part
                    self.step(tuple((1, c + k) for c, n in zip(ctx, sty or (K,) * len(ctx)) if n > k))
                    base = self._base.get(bkey)
                if base is None:
                    break
                bases.append((k, e, r, (*base, self._base_kernels.get(bkey, 0))))
            else:
                parts.append((ctx, sty, K, bases))
                continue
            if j == 0:
                return None
        self._ahead = {}
        ops_seqs, base, kernels, count, offsets = self._rows(parts)
        ops = self._attention_ops(ops_seqs if isinstance(ops_seqs, SeqArrays) else SeqArrays(*ops_seqs))
        acm = self._acm
        if acm is None:
            acm = self._acm = self.cm.over_steps()
        time_s, energy, flops, bytes_main, kernels = self._with_attention(ops, base, kernels, acm._price)
        if not self.stack.is_ideal:
            wall = self.stack.step_time(time_s, kernels, count, True)
            time_s, energy = wall, energy + self._idle_w * (wall - time_s)
        rows = sum(p[2] for p in parts)
        out = [v if isinstance(v, np.ndarray) and v.shape == (rows,) else np.full(rows, v, dtype=float)
               for v in (time_s, energy, flops, bytes_main)]
        for (ctx, sty, K, _), at in zip(parts[1:], offsets[1:]):
            self._ahead[tuple(sorted(zip(ctx, sty)))] = tuple(v[at:at + K] for v in out)
        return tuple(v[offsets[0]:offsets[0] + steps] for v in out)

    def _rows(self, parts):
        """The steps of ``parts`` (decode_steps) as rows of one SeqArrays, with each row's (T, R) sums,
        kernels and request count (numbers when there is one run of an unchanged request set), and the
        first row of each part. The run of the most requests comes first (the builder reads the phase
        from the first step, whose requests must all be there)."""
        import numpy as np

        from workloads.graph import SeqArrays

        if len(parts) == 1 and len(parts[0][3]) == 1:
            ctx, _, K, ((_, _, R, (*base, kernels)),) = parts[0]
            c = np.asarray(ctx, dtype=np.int64)[None, :] + np.arange(K, dtype=np.int64)[:, None]
            return SeqArrays(np.ones_like(c), c), tuple(base), kernels, R, (0,)
        order = sorted(range(len(parts)), key=lambda j: -len(parts[j][0]))
        parts = [parts[j] for j in order]
        width = len(parts[0][0])
        ks = [p[2] for p in parts]
        starts = [0] * len(parts)
        at = 0
        for j, K in zip(order, ks):
            starts[j] = at
            at += K
        pad = [0] * width
        flat = [[], []]  # each part's contexts and stays, padded to the width (absent requests: stay 0)
        for ctx, sty, K, _ in parts:
            n = len(ctx)
            flat[0] += ctx
            flat[0] += pad[n:]
            flat[1] += sty if sty is not None else [K] * n
            flat[1] += pad[n:]
        # each row's contexts and stays (the part's, repeated over its steps) and its step in its part (the
        # row's index less its part's first row); ndarray.repeat, not np.repeat (its Python wrapper)
        ctx, sty = np.array(flat, dtype=np.int64).reshape(2, len(parts), width).repeat(ks, axis=1)
        k = (np.arange(at, dtype=np.int64) - np.array(list(accumulate(ks, initial=0))[:-1], dtype=np.int64).repeat(ks))
        k = k[:, None]
        first = (k < sty).astype(np.int64)  # absent (padding) requests have stay 0: never there
        second = (ctx + k) * first  # a request's context at its step, 0 where it is absent
        segs = [s for p in parts for s in p[3]]
        lens = [e - k for k, e, _, _ in segs]
        cols = np.array([b for *_, b in segs], dtype=float).repeat(lens, axis=0).T
        count = np.array([r for _, _, r, _ in segs]).repeat(lens)
        return SeqArrays(first, second, count), tuple(cols[:5]), cols[5], count, starts

    def run_known(self, requests: int, stays, steps: int) -> bool:
        """Whether ``decode_steps`` of ``requests`` requests staying ``stays`` steps each, over ``steps`` steps,
        would find the (T, R) part of each of its stretches known (it would price no step of its own)."""
        base = self._base
        return all(self._decode_key(r) in base for _, _, r in _stretches(requests, stays, steps))

    def count_steps(self, steps: int) -> None:
        """Count ``steps`` steps of a decode_steps answer as used (memo statistics)."""
        self.calls += steps
        self.misses += steps

    # ---- internals ------------------------------------------------------------------------
    def _wall(self, sc: StepCost, key, decode: bool | None = None) -> StepCost:
        """The step's wall time under the serving stack (hwmodels.stack.Stack.step_time); ``decode``: whether
        every request computes one token (T == R: every request has at least one), found here if None."""
        if self.stack.is_ideal:
            return sc
        if decode is None:
            decode = all(n == 1 for n, _ in key)
        return self._walled(sc.time_s, sc.energy_j, sc.flops, sc.bytes_main, sc.kernels, len(key), decode)

    def _walled(self, time_s, energy_j, flops, bytes_main, kernels, requests: int, decode: bool) -> StepCost:
        """The StepCost of a step of ``requests`` requests whose kernels take ``time_s``: its wall time under
        the serving stack (the one place :meth:`_wall` and ``step`` apply it)."""
        stack = self.stack
        if not stack.is_ideal:
            wall = stack.step_time(time_s, kernels, requests, decode)
            # the chips idle while the stack's runtime runs between kernels (its CPU work, eager launches)
            time_s, energy_j = wall, energy_j + self._idle_w * (wall - time_s)
        return StepCost(time_s, energy_j, flops, bytes_main, kernels)

    def _decode_key(self, r: int) -> tuple:
        """The (T, R) table's key of a pure decode step of ``r`` requests (MLA: the split, all decodes)."""
        return (r, r) if not self._mla else (r, r, 0, 0, r)

    @staticmethod
    def _mla_key(key) -> tuple:
        kv_rows = cached = dec = 0
        for n, c in key:
            if n == 1 and c > 0:
                dec += 1
            else:
                kv_rows += n + c
                cached += c
        return (kv_rows, cached, dec)

    def _full(self, key, bkey) -> StepCost:
        """Price the whole graph; remember the non-attention part under ``bkey``."""
        self.graph_builds += 1
        gc = self._graph_cost(key)
        if len(self.cm._memo) > self._max_op_memo:
            # the cost model's per-op memo only saves re-pricing; (T, R) keys already cover what
            # repeats, so drop it rather than let it grow with every new step size
            self.cm._memo.clear()
        if len(self._base) < self._max_base and self._exact:
            self._base[bkey] = totals(gc.ops, skip_kind="attention")
            self._base_kernels[bkey] = sum(c.count for c in gc.ops if c.kind != "attention") * self.pp
            if self._apart and bkey[:2] not in self._base:  # the (T, R) part: the ops of neither side, no cut op
                rest = [c for c in gc.ops if c.kind != "attention" and c.name not in self._split_op_names()]
                self._base[bkey[:2]] = totals(rest)
                self._base_kernels[bkey[:2]] = sum(c.count for c in rest) * self.pp
        return self._step_cost(gc)

    #: token counts whose (T, R) parts are priced together (one vectorized evaluation)
    BLOCK = 256
    #: token-count blocks kept (5 x BLOCK floats each, ~10 kB)
    MAX_BLOCKS = 2_000
    #: request counts whose head ops' prices are kept (a few ops each)
    MAX_HEADS = 10_000

    def _from_block(self, T: int, R: int):
        """The (T, R) part: the sums of the ops that depend on T alone, priced with the others of its block
        of BLOCK token counts in one vectorized evaluation of the same builder code
        (workloads.stepops.other_ops) and the same cost formulas (CostModel.over_steps), continued in op
        order by the ops that depend on R (the LM head and sampling, last in a step: ``_split``), priced
        once per R; remembered in the (T, R) table. The sums are those of the whole graph's ops in the
        same order (sim.estimate.totals; under a block-scaled scheme, a model without MLA has its cut ops in
        the block: ``_price_block``; an MLA step's come in ``_from_sides``). None (then the caller prices the
        whole graph) at the first miss of each block (a block pays off only where token counts vary, as prompt
        lengths do), when the tables are full, or when the ops cannot be split so or priced over token
        arrays."""
        tb = T // self.BLOCK
        got = self._blocks.get(tb)
        if got is None:
            if len(self._blocks) < self.MAX_BLOCKS:
                self._blocks[tb] = False  # seen once
            return None
        if not got:
            got = self._price_block(tb)
            if got is None:
                return None
        head = self._heads.get(R)
        if head is None:
            head = self._price_head(R)
            if head is None:
                return None
        if len(self._base) >= self._max_base:
            return None
        first, sums, kernels = got
        base = totals(head[0], start=tuple(sums[:, T - first].tolist()))
        kernels += head[1]
        self._base[(T, R)] = base
        self._base_kernels[(T, R)] = kernels
        return base

    #: split shapes (one side's (kv_rows, cached, decodes)) whose split ops' sums are kept (6 numbers each)
    MAX_SIDES = 20_000

    def _from_sides(self, bkey, key):
        """An MLA step's non-attention part (``bkey``: T, R, kv_rows, cached, decodes): its (T, R) part (the
        ops of neither side of the split: from the (T, R) table, or a block, as other models' steps) continued
        by the split ops of its prefill side and of its decode side (each side priced once per shape:
        ``_side``) and, under a block-scaled scheme, by the cut ops of the step ``key`` (``_cut``); remembered
        under ``bkey``. None (then the caller prices the whole graph, which gives the (T, R) part) when that
        part is not known yet or the table is full."""
        T, R, kv_rows, cached, decodes = bkey
        tr = self._base.get((T, R))
        if tr is None and self._blocks is not None:
            tr = self._from_block(T, R)
        if tr is None or len(self._base) >= self._max_base:
            return None
        compute, comm, flops, bytes_main, energy = tr
        kernels = self._base_kernels[(T, R)]
        for side in ((kv_rows, cached, 0), (0, 0, decodes)):
            if side[0] or side[2]:
                (c, m, f, b, e), k = self._side(side)
                compute, comm, flops, bytes_main, energy = compute + c, comm + m, flops + f, bytes_main + b, energy + e
                kernels += k
        base = (compute, comm, flops, bytes_main, energy)
        if self._cuts:
            costs, k = self._cut(key)
            base = totals(costs, start=base)
            kernels += k
        self._base[bkey] = base
        self._base_kernels[bkey] = kernels
        return base

    def _side(self, side: tuple) -> tuple:
        """(sums as sim.estimate.totals gives them, kernels) of the split ops of one side of an MLA step
        (workloads.stepops.mla_split_ops: the same builder code as the whole graph's, priced by the same cost
        model), kept per side shape (at most MAX_SIDES, then all dropped)."""
        got = self._sides.get(side)
        if got is None:
            from workloads.stepops import mla_split_ops

            costs, kernels = self._priced(mla_split_ops(self.spec, *side, self.quant, self.parallel,
                                                        self.options.fused))
            got = (totals(costs), kernels)
            if len(self._sides) >= self.MAX_SIDES:
                self._sides.clear()
            self._sides[side] = got
        return got

    def _cut(self, key) -> tuple:
        """(prices, kernels) of the cut ops of the step ``key`` (workloads.stepops.cut_ops: o_proj's activation
        quantization, and MLA's kv_b_proj's, marked fresh after the step's own neighbours by the builder), for
        the (T, R, split) key's table (its callers remember the sums there)."""
        from workloads.stepops import cut_ops

        return self._priced(cut_ops(self.spec, key, self.quant, self.parallel, self.attention_kernel,
                                    self.options.fused))

    def _priced(self, ops) -> tuple:
        """(the ops' prices in op order, their kernels) by the same cost model. The layer kinds' split and cut
        ops are equal but for their layer and count (as their attention ops: ``_with_attention``;
        tests/unit/test_serving_step.py): each name is priced once."""
        from dataclasses import replace

        priced, costs = {}, []
        for op in ops:
            c = priced.get(op.name)
            if c is None:
                c = priced[op.name] = self.cm.op_cost(op)
            costs.append(c if c.count == op.count else replace(c, count=op.count, layer=op.layer))
        return costs, sum(op.count for op in ops) * self.pp

    def _split_op_names(self) -> frozenset:
        """The names of an MLA model's split ops (both sides) and cut ops, from the builder (made once)."""
        if self._split_names is None:
            from workloads.stepops import CUT_OPS, mla_split_ops

            ops = mla_split_ops(self.spec, 1, 0, 1, self.quant, self.parallel, self.options.fused)
            self._split_names = frozenset(op.name for op in ops) | CUT_OPS
        return self._split_names

    def _shared(self) -> dict | None:
        """This context's shared one-time parts (``_PARTS``): made empty for a new context; None where the
        cost model keeps its own memo (design points, the shared memo off)."""
        ck = self.cm.context_key()  # now, not at construction: a draft's placement is set after it
        if ck is None:
            return None
        if self._spec_key is None:
            self._spec_key = (repr(self.spec), repr(self.quant), repr(self.parallel), self.attention_kernel)
        key = (ck, self._spec_key)
        got = _PARTS.get(key)
        if got is None:
            if len(_PARTS) >= MAX_PART_CONTEXTS:
                shared_parts_clear()
            got = _PARTS[key] = {"split": None, "blocks": {}, "heads": {}}
        return got

    def _arrays_cm(self):
        """The cost model over token-count arrays (CostModel.over_steps), made once."""
        acm = self._acm
        if acm is None:
            acm = self._acm = self.cm.over_steps()
        return acm

    def _split(self):
        """Index of the first op of ``other_ops`` that depends on the request count R: every op from it on
        does and every op before it does not, and those ops do not depend on T (for T >= R); None when the
        ops are not so split (then no blocks). Found once by building the ops at two R and two T."""
        if self._split_at is None:
            shared = self._shared()
            if shared is not None and shared["split"] is not None:
                self._split_at = shared["split"]
                return self._split_at if self._split_at >= 0 else None
            import numpy as np

            from workloads.stepops import other_ops

            def ops(t, r):
                return other_ops(self.spec, np.array([t], dtype=np.int64), r, self.quant, self.parallel,
                                 self.options.fused)

            a, b, c = ops(8, 1), ops(8, 2), ops(9, 2)
            differ = [i for i, (x, y) in enumerate(zip(a, b)) if not _same(x, y)]
            ok = len(a) == len(b) == len(c) and differ and differ == list(range(differ[0], len(a))) \
                and all(_same(x, y) for x, y in zip(b[differ[0]:], c[differ[0]:]))
            self._split_at = differ[0] if ok else -1
            if shared is not None:
                shared["split"] = self._split_at
        return self._split_at if self._split_at >= 0 else None

    def _price_block(self, tb: int):
        """(first token count, the sums of the T-only ops per token count (5 x n), their kernels)."""
        import numpy as np

        from workloads.stepops import cut_ops, other_ops

        cut = self._split()
        if cut is None:
            self._blocks = None
            return None
        shared = self._shared()
        got = shared["blocks"].get(tb) if shared is not None else None
        if got is not None:  # priced by an earlier coster of this context: the same numbers
            self.blocks += 1
            self.blocks_reused += 1
            self._blocks[tb] = got
            return got
        first = max(tb * self.BLOCK, 1)
        ts = np.arange(first, (tb + 1) * self.BLOCK, dtype=np.int64)
        acm = self._arrays_cm()
        ops = other_ops(self.spec, ts, 1, self.quant, self.parallel, self.options.fused)[:cut]
        if self._cuts and not self._mla:  # o_proj's activation quantization: on T alone (cut_ops), here over
            from workloads.seqs import SeqArrays  # one-request steps of the block's token counts

            ops += cut_ops(self.spec, SeqArrays(ts[:, None], np.zeros((len(ts), 1), dtype=np.int64)), self.quant,
                           self.parallel, self.attention_kernel, self.options.fused)
        try:
            costs = [acm._price(op) for op in ops]
        except (TypeError, ValueError):  # an op that cannot be priced over token arrays (none known):
            self._blocks = None  # whole graphs from here on (the same prices, one T at a time)
            return None
        self.blocks += 1
        sums = np.array([np.broadcast_to(v, ts.shape) for v in totals(costs)], dtype=float)
        sums.flags.writeable = False  # shared by the costers of this context
        got = (first, sums, sum(op.count for op in ops) * self.pp)
        self._blocks[tb] = got
        if shared is not None:
            self._share("blocks", tb, got)
        return got

    def _price_head(self, R: int):
        """The prices of the ops that depend on R (numbers, in op order) and their kernels, at R requests
        (built at T = R: they do not depend on T)."""
        import numpy as np

        from workloads.stepops import other_ops

        if len(self._heads) >= self.MAX_HEADS:
            return None
        shared = self._shared()
        head = shared["heads"].get(R) if shared is not None else None
        if head is not None:  # priced by an earlier coster of this context: the same numbers
            self.heads_reused += 1
            self._heads[R] = head
            return head
        ops = other_ops(self.spec, np.array([R], dtype=np.int64), R, self.quant, self.parallel,
                        self.options.fused)[self._split():]
        try:
            costs = [self._arrays_cm()._price(op) for op in ops]
        except (TypeError, ValueError):
            self._blocks = None
            return None

        def num(v):  # one token count's value: a 1-element array, or a number
            return float(np.asarray(v, dtype=float).reshape(-1)[0])

        head = (tuple(_Price(c.kind, c.count, num(c.time_s), num(c.flops), num(c.bytes_main), num(c.energy_j))
                      for c in costs), sum(op.count for op in ops) * self.pp)
        self._heads[R] = head
        if shared is not None:
            self._share("heads", R, head)
        return head

    def _share(self, part: str, key, value) -> None:
        """Keep ``value`` as this context's shared ``part`` ("blocks" or "heads") at ``key``; past that part's
        bound over all contexts (MAX_SHARED_BLOCKS, MAX_SHARED_HEADS) every shared part is dropped first."""
        i = 0 if part == "blocks" else 1
        if _held[i] >= (MAX_SHARED_BLOCKS, MAX_SHARED_HEADS)[i]:
            shared_parts_clear()
        self._shared()[part][key] = value
        _held[i] += 1

    def _attention_ops(self, key):
        from workloads.stepops import attention_ops

        return attention_ops(self.spec, key, self.quant, self.parallel, self.attention_kernel, self.options.fused)

    def _decomposed(self, key, base, kernels: float = 0.0) -> StepCost:
        return StepCost(*self._with_attention(self._attention_ops(key), base, kernels, self.cm._price))

    def _with_attention(self, ops, base, kernels, price) -> tuple:
        """(kernel time, energy, FLOPs, main bytes of all chips, kernel launches) of a step whose
        non-attention sums are ``base`` ((T, R) memo) and whose attention ops are ``ops``, priced by
        ``price`` (numbers for one step, arrays over the steps of a decode run): the sum of
        :func:`sim.estimate.combine`, in one place for both. Layer kinds of the same attention window
        (DeepSeek's dense and MoE layers) have attention ops equal but for their layer and count (the
        builder reads a kind's tag and window only; tests/unit/test_serving_step.py), which no price
        reads: such an op takes the price of the first of its name and window."""
        compute, comm, flops, bytes_main, energy = base
        priced = {}
        for op in ops:
            key = (op.name, op.attention.window)
            c = priced.get(key)
            if c is None:
                c = priced[key] = price(op)
            k = op.count
            kernels += k * self.pp
            compute = compute + c.time_s * k
            flops = flops + c.flops * k
            bytes_main = bytes_main + c.bytes_main * k
            energy = energy + c.energy_j * k
        stage = stage_time(compute, comm, self.options)
        ch = self.chips
        if ch == 1:  # one chip, one stage: x 1 changes no value (and costs an array op each over a run's steps)
            return stage, energy, flops, bytes_main, kernels
        return stage * self.pp, energy * ch, flops * ch, bytes_main * ch, kernels


def _stretches(requests: int, stays, steps: int) -> list:
    """(first step, end, requests) of each stretch of an unchanged request set in a decode run of ``steps``
    steps whose requests take part in steps k < stays[i] (all of them when ``stays`` is None): requests only
    leave, so a stretch ends where one leaves."""
    if stays is None or min(stays) >= steps:
        return [(0, steps, requests)]
    out = []
    k, r = 0, requests
    for n in sorted(stays):
        if n >= steps:
            break
        if n > k:
            out.append((k, n, r))
            k = n
        r -= 1
    out.append((k, steps, r))
    return out


def _same(a, b) -> bool:
    """``a`` and ``b`` (ops, their shapes and tensors, numbers, arrays) hold the same values: the same
    type and, field by field, equal numbers (arrays: the same shape, dtype and elements)."""
    if a is b:
        return True
    t = type(a)
    if t is not type(b):
        return False
    if t is tuple:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    names = _FIELDS.get(t)
    if names is None:
        names = _FIELDS[t] = tuple(getattr(t, "__dataclass_fields__", ()))
    if names:
        for f in names:
            if not _same(getattr(a, f), getattr(b, f)):
                return False
        return True
    if isinstance(a, _NDARRAY):
        return a.shape == b.shape and a.dtype == b.dtype and bool((a == b).all())
    return a == b


_FIELDS: dict = {}  # type -> its dataclass fields (none: compared with ==)


@dataclass(frozen=True)
class _Price:
    """What sim.estimate.totals reads of an op's price (a head op's, kept per request count)."""

    kind: str
    count: int
    time_s: float
    flops: float
    bytes_main: float
    energy_j: float
