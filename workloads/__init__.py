"""Workloads: what runs. Model configs -> operator graphs (exact FLOPs and bytes per op)."""

from workloads.model import LayerKind, ModelSpec, list_models, load_model  # noqa: F401
