"""Design-space sweeps: many (hardware x workload) points priced on the vector path or simulated.

- :func:`load_spec` reads a sweep spec (YAML; docs/sweeps.md) with located errors;
- :func:`generate` makes its points (grid, random, Latin hypercube) with stable ids;
- :func:`run_sweep` runs them (in process, a local pool or Dask) into a resumable Parquet folder;
- :func:`pareto_front` and :func:`sensitivity` read the table.
"""

from sim.sweep.pareto import pareto_front, parse_objectives
from sim.sweep.points import generate
from sim.sweep.results import ResultStore, load_results
from sim.sweep.runner import SweepRun, run_sweep
from sim.sweep.sensitivity import sensitivity
from sim.sweep.spec import SweepSpec, load_spec, spec_from_dict

__all__ = ["ResultStore", "SweepRun", "SweepSpec", "generate", "load_results", "load_spec", "pareto_front",
           "parse_objectives", "run_sweep", "sensitivity", "spec_from_dict"]
