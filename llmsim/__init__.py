"""llmsim: predict how fast, at what energy and at what cost LLMs run on a given piece of hardware.

This package is the front door: the public Python API re-exported from hwmodels/, workloads/,
sim/ and reports/, and the ``llmsim`` command line (``llmsim.cli``).
"""

__version__ = "0.1.0"

from hwmodels import load_chip, load_system, list_hardware  # noqa: E402,F401
from hwmodels.errors import InfeasibleError, SpecError  # noqa: E402,F401
