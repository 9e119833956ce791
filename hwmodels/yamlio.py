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
from hwmodels.limits import MAX_NUMBER_CHARS, MAX_YAML_DEPTH, MAX_YAML_VALUES, read_text

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


_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _tag(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer refuses nesting deeper than MAX_YAML_DEPTH (PyYAML composes
    recursively, so a few hundred brackets would overflow Python's stack)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"mappings and lists nested deeper than {MAX_YAML_DEPTH} levels", mark)
            return yaml.composer.Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1


_CParser = getattr(getattr(yaml, "_yaml", None), "CParser", None) if yaml.__with_libyaml__ else None
if _CParser is not None:
    class _FastLoader(yaml.composer.Composer, _CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """libyaml's scanner and parser (C) under the same Python composer, constructor, resolver and depth
        limit as ``_Loader``: the same nodes and marks, about 8x faster on a catalog file. Used for
        files that parse cleanly; any parse problem is read again by ``_Loader``, so that every message
        stays PyYAML's own (``load_marked``)."""

        _depth = 0
        compose_node = _Loader.compose_node

        def __init__(self, stream):
            _CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            yaml.composer.Composer.__init__(self)
else:  # PyYAML built without libyaml
    _FastLoader = None


class _Walk:
    """Turns a composed node graph into plain data, with marks, within the limits."""

    def __init__(self, file, loader):
        self.file, self.loader = file, loader
        self.marks: dict = {}
        self.problems: list = []
        self.values = 0
        self.active: set = set()

    def at(self, node, message, path) -> Problem:
        return Problem(message, self.file, node.start_mark.line + 1, node.start_mark.column + 1, dotted(path))

    def scalar(self, node, path):
        if node.tag not in _SCALAR_TAGS:
            self.problems.append(self.at(node, f"the YAML tag '{_tag(node.tag)}' is not allowed here; llmsim "
                                               "files hold plain mappings, lists, text and numbers", path))
            return None
        if node.tag in (_CORE + "int", _CORE + "float") and len(node.value) > MAX_NUMBER_CHARS:
            self.problems.append(self.at(node, f"a number of {len(node.value)} characters; at most "
                                               f"{MAX_NUMBER_CHARS} are read (no physical figure needs more)", path))
            return None
        if node.tag == _CORE + "str":
            m = _SURROGATE.search(node.value)
            if m:
                self.problems.append(self.at(node, f"text holds a lone surrogate ({m.group()!a}), which is not "
                                                   "valid Unicode; remove the escape", path))
                return None
            if node.style is None and _FLOATISH.match(node.value):
                return float(node.value)
        return self.loader.construct_object(node, deep=True)

    def walk(self, node, path):
        self.values += 1
        if self.values > MAX_YAML_VALUES:
            raise SpecError([self.at(node, f"more than {MAX_YAML_VALUES:,} values after expanding aliases "
                                           "(an alias bomb?); write the values out instead", path)])
        if len(path) > MAX_YAML_DEPTH:
            raise SpecError([self.at(node, f"mappings and lists nested deeper than {MAX_YAML_DEPTH} levels", path)])
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        want = _CORE + ("map" if isinstance(node, yaml.MappingNode) else "seq")
        if node.tag != want:
            self.problems.append(self.at(node, f"the YAML tag '{_tag(node.tag)}' is not allowed here; llmsim "
                                               "files hold plain mappings, lists, text and numbers", path))
            return None
        if id(node) in self.active:
            raise SpecError([self.at(node, "a recursive alias (a value that contains itself)", path)])
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
            return [self.walk(v, path + (i,)) for i, v in enumerate(node.value)]
        finally:
            self.active.discard(id(node))

    def mapping(self, node, path):
        out = {}
        for knode, vnode in node.value:
            key = self.scalar(knode, path) if isinstance(knode, yaml.ScalarNode) else None
            if key is None or not isinstance(key, (str, int, float, bool)):
                self.problems.append(self.at(knode, "mapping keys must be plain names", path))
                continue
            key = str(key)
            if key in out:
                first = self.marks.get(path + (key,), (None, None))
                self.problems.append(self.at(
                    knode, f"duplicate key '{key}' (first given at line {first[0]}); each key may appear once",
                    path + (key,)))
                continue
            out[key] = self.walk(vnode, path + (key,))
            self.marks[path + (key,)] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
        return out


def _reader_problem(e, text: str, file: str) -> Problem:
    pos = getattr(e, "position", 0) or 0
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    ch = getattr(e, "character", None)
    code = ord(ch) if isinstance(ch, str) and len(ch) == 1 else ch
    what = f"the character U+{code:04X}" if isinstance(code, int) else "a character"
    return Problem(f"{what} is not allowed in YAML (only printable text, tabs and line breaks)", file, line, col)


def load_marked(text: str, file: str) -> list[Marked]:
    """Parse YAML text (possibly several documents) into Marked documents, or raise SpecError."""
    if not text.strip():
        raise SpecError([Problem("the file is empty; expected a YAML mapping with 'version' and 'kind'", file, 1, 1)])
    if _FastLoader is not None:
        try:
            return _load_with(_FastLoader, text, file)
        except (yaml.YAMLError, UnicodeError, RecursionError):
            pass  # read again below, so that the message is PyYAML's own
    try:
        return _load_with(_Loader, text, file)
    except yaml.reader.ReaderError as e:
        raise SpecError([_reader_problem(e, text, file)]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        msg = getattr(e, "problem", None) or str(e)
        raise SpecError([Problem(f"not valid YAML: {msg}", file,
                                 mark.line + 1 if mark else None, mark.column + 1 if mark else None)]) from None
    except RecursionError:
        raise SpecError([Problem(f"mappings and lists nested too deep (at most {MAX_YAML_DEPTH} levels)",
                                 file, 1, 1)]) from None


def _load_with(cls, text: str, file: str) -> list[Marked]:
    """The Marked documents of ``text`` read by loader class ``cls``; parse errors propagate as they are."""
    docs = []
    loader = cls(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            w = _Walk(file, loader)
            data = w.walk(node, ())
            if w.problems:
                raise SpecError(w.problems)
            docs.append(Marked(data, w.marks, file))
    finally:
        loader.dispose()
    if not docs:
        raise SpecError([Problem("the file holds no YAML document", file, 1, 1)])
    return docs


def read_yaml(path, what: str = "a YAML file") -> list[Marked]:
    """Read a YAML file within the limits (regular file, size) and parse it; SpecError otherwise."""
    return load_marked(read_text(path, "yaml_bytes", what), str(path))
