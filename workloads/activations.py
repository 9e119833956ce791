"""MLP activation functions: the name a Hugging Face ``config.json`` gives (``hidden_act``,
``hidden_activation``, ``activation_function``) -> the function it is -> its vector FLOPs per element.

Source of the names: the keys of ``ACT2CLS`` in Hugging Face transformers v5.25.0,
``src/transformers/activations.py`` (git tag v5.25.0; read from the PyPI wheel
``transformers-5.25.0-py3-none-any.whl``). Transformers looks a name up exactly (case-sensitive),
so does this table; any other name is one transformers itself refuses (``get_activation`` raises
KeyError). Such a name is priced as GELU and warned about when the config is read
(``workloads.model``), never refused: a what-if on an unknown function stays possible.

FLOPs per element follow the convention of the other per-element counts in
``workloads/graph.py``: each arithmetic operation, comparison/select and special function (exp,
log, tanh, erf, sqrt) counts 1. In a gated MLP (SwiGLU, GeGLU) the activation of the gate is
multiplied by the up projection: one FLOP more per element (:func:`activation_flops`).
"""

from __future__ import annotations

import difflib

__all__ = ["ACTIVATIONS", "ACTIVATIONS_SOURCE", "FUNCTION_FLOPS", "UNKNOWN_AS", "activation_flops",
           "unknown_activation"]

ACTIVATIONS_SOURCE = ("Hugging Face transformers v5.25.0 (git tag v5.25.0), src/transformers/activations.py, "
                      "ACT2CLS")

#: function -> (vector FLOPs per element, derivation)
FUNCTION_FLOPS = {
    "silu": (4, "x * sigmoid(x): exp, add, divide, multiply"),
    "gelu_tanh": (8, "0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))): llmsim's GELU count (tanh approximation)"),
    "gelu_erf": (8, "0.5x(1 + erf(x/sqrt(2))): priced at the GELU count of the tanh approximation, as "
                    "llmsim always priced 'gelu' (its own operations, scale, erf, add, multiply, multiply, are 5)"),
    "gelu_clipped": (10, "clip(gelu(x), -10, 10): the GELU count and two comparisons"),
    "quick_gelu": (5, "x * sigmoid(1.702x): multiply, exp, add, divide, multiply"),
    "relu": (1, "max(x, 0)"),
    "relu2": (2, "relu(x)^2: max, multiply"),
    "relu6": (2, "min(max(x, 0), 6)"),
    "leaky_relu": (2, "x if x > 0 else a*x: compare/select, multiply (PReLU: a learned a, the same operations)"),
    "hardswish": (5, "x * relu6(x + 3) / 6: add, max, min, multiply, multiply by 1/6"),
    "sigmoid": (3, "1 / (1 + exp(-x)): exp, add, divide"),
    "tanh": (1, "tanh(x): one special function"),
    "mish": (5, "x * tanh(softplus(x)), softplus = log(1 + exp(x)): exp, add, log, tanh, multiply"),
    "laplace": (5, "0.5(1 + erf((x - mu) / (sigma sqrt 2))): subtract, scale, erf, add, multiply"),
    "sqrt_softplus": (4, "sqrt(log(1 + exp(x))): exp, add, log, sqrt"),
    "xielu": (11, "torch.where(x > 0, a_p x^2 + b x, (expm1(min(x, eps)) - x) a_n + b x): both branches "
                  "(multiply, multiply, multiply, add; min, expm1, subtract, multiply, multiply, add) and the select"),
    "identity": (0, "x (no operation; the op still reads and writes its tensor)"),
}

#: Hugging Face activation name -> the function it is (the ACT2CLS class in the comment)
ACTIVATIONS = {
    "gelu": "gelu_erf",  # GELUActivation: nn.functional.gelu (exact, erf)
    "gelu_10": "gelu_clipped",  # ClippedGELUActivation(min=-10, max=10)
    "gelu_fast": "gelu_tanh",  # FastGELUActivation
    "gelu_new": "gelu_tanh",  # NewGELUActivation
    "gelu_python": "gelu_erf",  # GELUActivation(use_gelu_python=True)
    "gelu_pytorch_tanh": "gelu_tanh",  # GELUTanh: nn.functional.gelu(approximate="tanh")
    "gelu_python_tanh": "gelu_tanh",  # GELUTanh(use_gelu_tanh_python=True)
    "gelu_accurate": "gelu_tanh",  # AccurateGELUActivation
    "hardswish": "hardswish",  # nn.Hardswish
    "laplace": "laplace",  # LaplaceActivation
    "leaky_relu": "leaky_relu",  # nn.LeakyReLU
    "linear": "identity",  # LinearActivation
    "mish": "mish",  # MishActivation
    "quick_gelu": "quick_gelu",  # QuickGELUActivation
    "relu": "relu",  # nn.ReLU
    "relu2": "relu2",  # ReLUSquaredActivation
    "relu6": "relu6",  # nn.ReLU6
    "sigmoid": "sigmoid",  # nn.Sigmoid
    "silu": "silu",  # SiLUActivation: nn.functional.silu
    "sqrtsoftplus": "sqrt_softplus",  # SqrtSoftplusActivation
    "swish": "silu",  # nn.SiLU
    "tanh": "tanh",  # nn.Tanh
    "prelu": "leaky_relu",  # nn.PReLU
    "xielu": "xielu",  # XIELUActivation
}

#: the function an unknown name is priced as (what llmsim priced every name but 'silu' and 'relu' as before)
UNKNOWN_AS = "gelu_tanh"


def activation_flops(name: str, gated: bool) -> int:
    """Vector FLOPs per element of the MLP activation ``name`` (a key of ACTIVATIONS; any other name is
    priced as UNKNOWN_AS); ``gated``: one multiply by the up projection more."""
    return FUNCTION_FLOPS[ACTIVATIONS.get(name, UNKNOWN_AS)][0] + (1 if gated else 0)


def unknown_activation(name: str) -> str:
    """What to tell the user about an activation name not in ACTIVATIONS (the message of a warning)."""
    hint = difflib.get_close_matches(name.lower()[:100], list(ACTIVATIONS), n=2, cutoff=0.75)  # transformers' names are lower case
    dym = f" (did you mean {' or '.join(hint)}?)" if hint else ""
    shown = repr(name) if len(name) <= 100 else f"{name[:100]!r}... ({len(name):,} characters)"
    return (f"unknown activation function {shown}{dym}; its MLP is priced as GELU "
            f"({FUNCTION_FLOPS[UNKNOWN_AS][0]} FLOPs per element, tanh approximation). Known names "
            f"({ACTIVATIONS_SOURCE}): {', '.join(sorted(ACTIVATIONS))}")
