"""llmsim: predict how fast, at what energy and at what cost LLMs run on a given piece of hardware.

The front door: the public Python API, re-exported from hwmodels/, workloads/, sim/ and reports/
(loaded lazily, so ``import llmsim`` stays light; ``dir(llmsim)`` and tab completion list it),
and the ``llmsim`` command line (``llmsim.cli``)::

    import llmsim
    chip = llmsim.load_chip("h100-sxm", overrides={"memory.hbm.bandwidth": "6 TB/s"})
    p = llmsim.predict("llama-3.1-8b", "h100-sxm", batch=32, input_len=1024, output_len=256)
    p.to_frame()                                   # per-op breakdown (pandas)
    llmsim.compare("llama-3.1-8b", ["a100-sxm", "h100-sxm"], batch=32, input_len=1024, output_len=256)
    g = llmsim.build_graph("llama-3.1-8b", llmsim.Batch.decode(32, 1024))
    llmsim.estimate(g, llmsim.load_system("h100-sxm")).to_frame()
    r = llmsim.simulate(llmsim.load_trace("azure-conv-2023").scenario(), "h100-sxm", "llama-3.1-8b")
    r.summary, r.requests                          # serving metrics (dict, DataFrame)
    llmsim.plot_roofline(chip, p)                  # every plot_* of reports.plots, on an optional ax

Run Python anywhere but the folder that *contains* a clone named ``llmsim``: there, ``import
llmsim`` would find the clone's folder first. The clone's root ``__init__.py`` handles that case
(it loads this package from the clone), see docs/api.md.
"""


_PLOTS = "reports.plots"

#: public name -> "module" (same name there) or "module:name"
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
    "sweep": "sim.sweep:run_sweep", "sweep_pareto_front": "sim.sweep:pareto_front",
    "sweep_sensitivity": "sim.sweep:sensitivity",
    "plan": "sim.plan", "PlanRequest": "sim.plan", "optimize": "sim.optimize",
    "compare": "sim.hwcompare",
    # cost of ownership (chip area, price, power from a process node and a memory technology)
    "chip_cost": "sim.tco", "tdp_w": "sim.tco", "load_node": "sim.tco", "load_memory_tech": "sim.tco",
    "tco_per_hour": "sim.tco",
    # validation against measured kernels (``llmsim validate``)
    "validate": "sim.validation.compare:compare", "error_stats": "sim.validation.compare",
    "load_measurements": "sim.validation.measure", "builtin_measurements": "sim.validation.measure",
    # readable numbers (the one formatter) and text tables
    "format_value": "hwmodels.format", "label": "hwmodels.format", "fmt_time": "hwmodels.format",
    "fmt_bytes": "hwmodels.format", "fmt_si": "hwmodels.format", "render_kv": "reports.tables",
    "render_table": "reports.tables", "render_metrics": "reports.tables",
    # plots (each takes an optional ax and returns the Axes)
    **{n: _PLOTS for n in (
        "plot_roofline", "plot_breakdown", "plot_breakdown_phases", "plot_throughput_latency", "plot_pareto",
        "plot_heatmap", "plot_sensitivity", "plot_metric_bars", "plot_latency_cdf", "plot_utilization",
        "plot_batch_size", "plot_kv_utilization", "plot_step_timeline", "plot_predicted_vs_measured",
        "plot_error_sizes",
        "ceilings", "memory_slopes", "breakdown_table", "static_sweep", "latency_percentiles", "pareto_front",
        "sensitivity", "use_theme", "style", "save", "PALETTE")},
    "OP_COLORS": "reports.validation",
}

__all__ = ["__version__", *_API]


def __getattr__(name):
    if name == "__version__":  # one source: the package metadata (pyproject.toml)
        from sim.version import llmsim_version

        return llmsim_version()
    if name in _API:
        import importlib

        module, _, attr = _API[name].partition(":")
        value = getattr(importlib.import_module(module), attr or name)
        globals()[name] = value  # resolved once
        return value
    raise AttributeError(f"module 'llmsim' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
