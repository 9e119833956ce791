"""Workloads: what runs. Model configs -> operator graphs (exact FLOPs and bytes per op).

The public names: :func:`load_model`/:func:`list_models` (a Hugging Face config.json ->
:class:`ModelSpec`), :func:`build_graph` (ModelSpec x :class:`Batch` x :class:`Quantization` x
:class:`Parallelism` -> :class:`OpGraph` of :class:`Op` s) and :func:`footprint` (bytes per chip).
This package counts work; it never holds hardware rates or times (``sim/`` does the dividing).
"""

from workloads.graph import (  # noqa: F401
    AttentionShape,
    Batch,
    CollectiveShape,
    GemmShape,
    Op,
    OpGraph,
    TensorIO,
    build_graph,
)
from workloads.memory import Footprint, check_fits, footprint  # noqa: F401
from workloads.model import LayerKind, ModelSpec, list_models, load_model  # noqa: F401
from workloads.parallel import Parallelism  # noqa: F401
from workloads.quant import Quantization  # noqa: F401

__all__ = ["load_model", "list_models", "build_graph", "ModelSpec", "LayerKind", "Op", "OpGraph",
           "TensorIO", "GemmShape", "AttentionShape", "CollectiveShape", "Batch", "Quantization",
           "Parallelism", "footprint", "check_fits", "Footprint"]
