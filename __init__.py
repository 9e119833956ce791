"""Only imported when Python runs in the folder that contains this clone, and the clone is named llmsim.

There, ``import llmsim`` finds this folder (the repository root) before the installed package,
and without this file Python would make it an empty namespace package (``AttributeError: module
'llmsim' has no attribute 'simulate'``). This file turns the import into the real package: it
points the package path at ./llmsim/, makes the sibling packages (hwmodels, workloads, sim,
reports) importable, and runs the package's own ``__init__``. Nothing else imports it.
See docs/api.md ("Where to run Python").
"""

import os as _os
import sys as _sys

_root = _os.path.dirname(_os.path.abspath(__file__))
_pkg = _os.path.join(_root, "llmsim")
if _root not in _sys.path:
    _sys.path.append(_root)  # hwmodels, workloads, sim, reports
__path__ = [_pkg]
__file__ = _os.path.join(_pkg, "__init__.py")
with open(__file__, encoding="utf-8") as _f:
    exec(compile(_f.read(), __file__, "exec"))
del _f, _os, _sys, _root, _pkg
