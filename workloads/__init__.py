"""Workloads: what runs. Model configs -> operator graphs (exact FLOPs and bytes per op).

The public names: :func:`load_model`/:func:`list_models` (a Hugging Face config.json ->
:class:`ModelSpec`), :func:`build_graph` (ModelSpec x :class:`Batch` x :class:`Quantization` x
:class:`Parallelism` -> :class:`OpGraph` of :class:`Op` s) and :func:`footprint` (bytes per chip).
This package counts work; it never holds hardware rates or times (``sim/`` does the dividing).
"""

from workloads.graph import (
    AttentionShape,
    Batch,
    CollectiveShape,
    GemmShape,
    Op,
    OpGraph,
    TensorIO,
    build_graph,
)
from workloads.memory import Footprint, check_fits, footprint
from workloads.model import LayerKind, ModelSpec, list_models, load_model, model_warnings
from workloads.parallel import Parallelism
from workloads.quant import Quantization

__all__ = [
    "AttentionShape",
    "Batch",
    "CollectiveShape",
    "Footprint",
    "GemmShape",
    "LayerKind",
    "ModelSpec",
    "Op",
    "OpGraph",
    "Parallelism",
    "Quantization",
    "TensorIO",
    "build_graph",
    "check_fits",
    "footprint",
    "list_models",
    "load_model",
    "model_warnings",
]
