"""The two kinds of error llmsim raises on user input (kept apart, as Calculon does).

- ``SpecError``: the input is malformed (bad YAML, unknown key, wrong unit, missing field). It
  carries every problem found, each as ``file:line:col: dotted.path: message``. CLI exit code 2.
- ``InfeasibleError``: the input is valid but cannot run (does not fit in memory, parallelism does
  not divide the model). It carries the numbers. CLI exit code 3. Sweeps record it and go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Problem", "SpecError", "InfeasibleError"]


@dataclass(frozen=True)
class Problem:
    """One problem in one input: where (file, line, column, dotted path) and what."""

    message: str
    file: str | None = None
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based
    path: str = ""

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.col is not None:
                    where += f":{self.col}"
            where += ": "
        path = f"{self.path}: " if self.path else ""
        return f"{where}{path}{self.message}"


class SpecError(ValueError):
    """Malformed input: one or more problems, all reported at once."""

    def __init__(self, problems, file: str | None = None):
        if isinstance(problems, (str, Problem)):
            problems = [problems]
        probs = []
        for p in problems:
            if isinstance(p, str):
                p = Problem(p, file=file)
            probs.append(p)
        self.problems: list[Problem] = probs
        super().__init__("\n".join(str(p) for p in probs))


@dataclass
class InfeasibleError(ValueError):
    """Valid input that cannot run; ``numbers`` holds the quantities that show why."""

    reason: str
    numbers: dict = field(default_factory=dict)

    def __post_init__(self):
        super().__init__(self.reason)

    def __str__(self) -> str:
        return self.reason
