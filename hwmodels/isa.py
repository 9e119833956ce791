"""Instruction issue rates of a GPU core by instruction class: how many thread results one core (SM) completes per
clock for each class of machine instruction, the chip facts that price a kernel's loop body by its instruction mix
(sim.rowkernels ``row_trips``; the mix of a kernel is a stack fact, hwmodels.stack ``instruction_mix``).

Classes (SASS opcodes, as the mixes in sim/validation/vidur.py count them):

- ``fp32``: FADD, FMUL, FFMA, FSETP, FSEL, FCHK (32-bit floating point): the chip's vector fp32 peak / (2 x cores x
  clock), the FP32 lanes of a core (A100: 64, H100: 128);
- ``fp16``: HADD2, HMUL2, HFMA2 (paired 16-bit floating point, one instruction per two results; the .F32
  conversions too): the vector fp16 peak / (2 x cores x clock) results, half as many instructions;
- ``special``: MUFU (exp2, rcp, rsqrt, sin, cos): the chip's special-function unit, peak / (cores x clock);
- ``integer``: IMAD, IADD3, LEA, LOP3, SHF, ISETP, SEL, IABS, PRMT, MOV, F2FP (the integer pipes; F2FP.PACK_AB is
  the fast FP32-to-FP16 conversion the integer/logic pipe runs on sm_80 and later);
- ``conversion``: I2F, F2I, F2F (the other type conversions);
- ``memory``: LDG, STG, LDS, STS, SHFL, S2R (load/store units);
- ``branch``: BRA, BSSY, BSYNC, EXIT, BAR: one issue slot per warp and scheduler (4 schedulers a core).

``ISSUE_RATES`` holds what the chip's units do not say, by architecture (thread results per clock per core): CUDA C++
Programming Guide, "Arithmetic Instructions" throughput table (compute capability 7.0 / 8.0 / 8.6 / 9.0: 32-bit
integer add, subtract, compare, shift, bitwise and multiply-add 64 per clock per SM; type conversions other than
8/16-bit integer to 32-bit 16 per clock); the load/store units from NVIDIA's architecture whitepapers (Volta
GV100, Ampere GA100 and Hopper GH100 SM diagrams: 8 LD/ST units per SM sub-partition, 32 per SM); branches one
warp instruction per clock per scheduler (4 warp schedulers per SM since Maxwell: 128 thread slots a clock). An
architecture not listed has no class rates: a kernel's loop body is then priced by its instruction count at the
stack's ``issue_per_clock`` (the dispatch limit alone).
"""

from __future__ import annotations

__all__ = ["CLASSES", "ISSUE_RATES", "issue_rates"]

CLASSES = ("fp32", "fp16", "special", "integer", "conversion", "memory", "branch")

_NVIDIA = {"integer": 64.0, "conversion": 16.0, "memory": 32.0, "branch": 128.0}
#: thread results per clock per SM of the classes the chip file's units do not give (module docstring)
ISSUE_RATES = {"volta": _NVIDIA, "ampere": _NVIDIA, "hopper": _NVIDIA}


def issue_rates(architecture, clock_hz, cores, fp32, fp16, special) -> dict | None:
    """Warp instructions per second one core completes, by class (``CLASSES``): fp32, fp16 and special from the
    chip's vector fp32 and fp16 and special-function peaks (FLOP/s; a chip's ``cores`` and ``clock_hz``), the
    others from :data:`ISSUE_RATES` by ``architecture``. Values may be numpy arrays (swept chips). None where the
    architecture is not listed or a clock, fp32 or special rate is missing."""
    table = ISSUE_RATES.get(architecture or "")
    if table is None or not clock_hz or fp32 is None or special is None:
        return None
    rates = {c: r * clock_hz / 32 for c, r in table.items()}
    rates["fp32"] = fp32 / 2 / cores / 32  # FLOP/s / 2 (an FMA) = results
    # paired halves: two results per instruction; without an fp16 vector rate, twice the fp32 lanes
    rates["fp16"] = (2 * fp32 if fp16 is None else fp16) / 2 / 2 / cores / 32
    rates["special"] = special / cores / 32
    return rates
