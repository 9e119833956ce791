"""Strict JSON for model configs (workloads.model): duplicated keys are kept for the caller to report,
non-finite or over-long numbers and lone surrogates are errors with the file, line and column."""

from __future__ import annotations

import json
import math
import re

from hwmodels.errors import Problem, SpecError
from hwmodels.limits import MAX_NUMBER_CHARS


def _no_duplicates(pairs):
    d = {}
    dups = []
    for k, v in pairs:
        if k in d:
            dups.append(k)
        d[k] = v
    if dups:
        d["__duplicate_keys__"] = dups
    return d


class _BadNumber(ValueError):
    def __init__(self, token: str, message: str):
        super().__init__(message)
        self.token, self.message = token, message


def _json_constant(token: str):
    raise _BadNumber(token, f"{token} is not a number llmsim reads; give a finite number")


def _json_int(token: str) -> int:
    if len(token.lstrip("-")) > MAX_NUMBER_CHARS:
        raise _BadNumber(token, f"a number of {len(token)} digits; at most {MAX_NUMBER_CHARS} are read")
    return int(token)


def _json_float(token: str) -> float:
    v = float(token)
    if len(token) > MAX_NUMBER_CHARS or not math.isfinite(v):
        raise _BadNumber(token, f"{token[:20]}{'...' if len(token) > 20 else ''} is not a finite number of at most "
                                f"{MAX_NUMBER_CHARS} characters")
    return v


def parse_json(text: str, f: str):
    """``text`` read as strict JSON: a duplicated key, NaN/Infinity, an over-long number or too deep a
    nesting is a SpecError naming the file ``f`` (and the line and column where known)."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_json_constant,
                          parse_int=_json_int, parse_float=_json_float)
    except json.JSONDecodeError as e:
        raise SpecError([Problem(f"not valid JSON: {e.msg}", file=f, line=e.lineno, col=e.colno)]) from None
    except _BadNumber as e:
        m = re.search(rf"(?<![\w.\"]){re.escape(e.token)}(?![\w.\"])", text)
        pos = m.start() if m else 0
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        raise SpecError([Problem(e.message, file=f, line=line if m else None, col=col if m else None)]) from None
    except RecursionError:
        raise SpecError([Problem("objects and lists nested too deep", file=f, line=1, col=1)]) from None


_SURROGATE = re.compile("[\\ud800-\\udfff]")


def lone_surrogate(o, depth=0):
    """The first lone surrogate in any key or string of a parsed JSON value, or None."""
    if isinstance(o, str):
        m = _SURROGATE.search(o)
        return m.group() if m else None
    items = o.items() if isinstance(o, dict) else enumerate(o) if isinstance(o, list) else ()
    for k, v in items:
        bad = lone_surrogate(k) if isinstance(k, str) else None
        bad = bad or lone_surrogate(v, depth + 1)
        if bad:
            return bad
    return None
