"""llmsim: predict how fast, at what energy and at what cost LLMs run on a given piece of hardware.

The front door: the public Python API, re-exported from hwmodels/, workloads/ and sim/ (loaded
lazily, so ``import llmsim`` stays light), and the ``llmsim`` command line (``llmsim.cli``)::

    import llmsim
    chip = llmsim.load_chip("h100-sxm", overrides={"memory.hbm.bandwidth": "6 TB/s"})
    p = llmsim.predict("llama-3.1-8b", "h100-sxm", batch=32, input_len=1024, output_len=256)
    p.to_frame()                                   # per-op breakdown (pandas)
    g = llmsim.build_graph("llama-3.1-8b", llmsim.Batch.decode(32, 1024))
    llmsim.estimate(g, llmsim.load_system("h100-sxm")).to_frame()
    r = llmsim.simulate(llmsim.load_trace("azure-conv-2023").scenario(), "h100-sxm", "llama-3.1-8b")
    r.summary, r.requests                          # serving metrics (dict, DataFrame)
"""


_API = {
    # hardware
    "load_chip": "hwmodels.loader", "load_system": "hwmodels.loader", "load_hardware": "hwmodels.loader",
    "list_hardware": "hwmodels.loader", "Chip": "hwmodels.chip", "System": "hwmodels.chip",
    "SpecError": "hwmodels.errors", "InfeasibleError": "hwmodels.errors",
    # workloads
    "load_model": "workloads", "list_models": "workloads", "build_graph": "workloads", "Batch": "workloads",
    "Quantization": "workloads", "Parallelism": "workloads", "footprint": "workloads",
    "Scenario": "workloads.scenario", "load_trace": "workloads.trace",
    # the engine
    "CostModel": "sim.cost", "CostOptions": "sim.cost", "estimate": "sim.estimate", "predict": "sim.predict",
    "predict_ops": "sim.ops", "simulate": "sim.serving", "run_sweep": "sim.sweep", "load_spec": "sim.sweep",
    "plan": "sim.plan", "optimize": "sim.optimize",
}

__all__ = ["__version__", *_API]


def __getattr__(name):
    if name == "__version__":  # one source: the package metadata (pyproject.toml)
        from sim.version import llmsim_version

        return llmsim_version()
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'llmsim' has no attribute {name!r}")
