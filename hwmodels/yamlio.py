"""YAML reading that keeps line and column of every value, and catches what PyYAML lets slip.

PyYAML's SafeLoader silently accepts duplicate keys (the last one wins) and reads ``1e-6`` as a
string (YAML 1.1 wants a dot). We compose the node graph ourselves, so that every value keeps
its mark (for ``file:line:col`` messages), duplicate keys become problems, and ``1e-6`` is a float.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from hwmodels.errors import Problem, SpecError

_FLOATISH = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)[eE][-+]?\d+$")


@dataclass
class Marked:
    """Plain Python data plus the (line, col) of each dotted path, 1-based."""

    data: object
    marks: dict  # path tuple -> (line, col)
    file: str

    def where(self, path: tuple) -> tuple[int | None, int | None]:
        p = tuple(path)
        while p:
            if p in self.marks:
                return self.marks[p]
            p = p[:-1]
        return self.marks.get((), (None, None))

    def problem(self, path: tuple, message: str) -> Problem:
        line, col = self.where(path)
        return Problem(message, file=self.file, line=line, col=col, path=dotted(path))


def dotted(path) -> str:
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out += ("." if out else "") + str(seg)
    return out


def _scalar(node: yaml.ScalarNode, loader):
    if node.tag == "tag:yaml.org,2002:str" and node.style is None and _FLOATISH.match(node.value):
        return float(node.value)
    return loader.construct_object(node, deep=True)


def _walk(node, path, marks, problems, file, loader):
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out = {}
        for knode, vnode in node.value:
            key = _scalar(knode, loader) if isinstance(knode, yaml.ScalarNode) else None
            if key is None or not isinstance(key, (str, int, float, bool)):
                problems.append(Problem("mapping keys must be plain names", file,
                                        knode.start_mark.line + 1, knode.start_mark.column + 1,
                                        dotted(path)))
                continue
            key = str(key)
            if key in out:
                first = marks.get(path + (key,), (None, None))
                problems.append(Problem(
                    f"duplicate key '{key}' (first given at line {first[0]}); each key may appear once",
                    file, knode.start_mark.line + 1, knode.start_mark.column + 1, dotted(path + (key,))))
                continue
            out[key] = _walk(vnode, path + (key,), marks, problems, file, loader)
            marks[path + (key,)] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, path + (i,), marks, problems, file, loader) for i, v in enumerate(node.value)]
    return _scalar(node, loader)


def load_marked(text: str, file: str) -> list[Marked]:
    """Parse YAML text (possibly several documents) into Marked documents, or raise SpecError."""
    if not text.strip():
        raise SpecError([Problem("the file is empty; expected a YAML mapping with 'version' and 'kind'", file, 1, 1)])
    loader = yaml.SafeLoader(text)
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            marks: dict = {}
            problems: list = []
            data = _walk(node, (), marks, problems, file, loader)
            if problems:
                raise SpecError(problems)
            docs.append(Marked(data, marks, file))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        msg = getattr(e, "problem", None) or str(e)
        raise SpecError([Problem(f"not valid YAML: {msg}", file,
                                 mark.line + 1 if mark else None, mark.column + 1 if mark else None)])
    finally:
        loader.dispose()
    if not docs:
        raise SpecError([Problem("the file holds no YAML document", file, 1, 1)])
    return docs
