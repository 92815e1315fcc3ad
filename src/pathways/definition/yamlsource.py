"""Read a YAML file into plain data plus the line and column of every node.

PyYAML's composer gives nodes with marks; we convert them ourselves so that duplicate keys
are caught (PyYAML silently keeps the last), aliases cannot blow up, and the size, depth,
encoding and emptiness of the file are checked before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pathways.errors import Location, Problem

try:  # libyaml is much faster on big files; fall back to the pure-Python loader
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_NODES = 100_000

PathKey = tuple[Any, ...]


@dataclass(frozen=True)
class Pos:
    line: int  # 1-based
    col: int  # 1-based
    style: str | None = None  # YAML scalar style: None (plain), "'", '"', "|", ">"


@dataclass
class Source:
    """One YAML document: its data and where each value (and each mapping key) stands."""

    file: str
    text: str
    data: Any
    values: dict[PathKey, Pos] = field(default_factory=dict)
    keys: dict[PathKey, Pos] = field(default_factory=dict)

    def at(self, path: PathKey, key: bool = False) -> Location:
        """The location of the value at ``path`` (or of its key), else of its nearest parent."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                pos = table[probe]
                return Location(self.file, pos.line, pos.col)
            if not key and probe in self.keys:
                pos = self.keys[probe]
                return Location(self.file, pos.line, pos.col)
            probe = probe[:-1]
        pos = self.values.get((), Pos(1, 1))
        return Location(self.file, pos.line, pos.col)

    def in_scalar(self, path: PathKey, offset: int) -> Location:
        """The location of character ``offset`` inside the string scalar at ``path``."""
        pos = self.values.get(tuple(path))
        if pos is None:
            return self.at(path)
        lines = self.text.splitlines()
        if pos.style in ("|", ">"):
            # block scalar: content starts on the next line, at its indentation
            value = _get(self.data, path)
            before = value[:offset] if isinstance(value, str) else ""
            line_index = pos.line + before.count("\n")  # 0-based index of the content line
            if pos.style == ">":
                return self._in_folded(pos, lines, offset)
            if line_index < len(lines):
                content = lines[line_index]
                indent = len(content) - len(content.lstrip(" "))
                column = indent + len(before.rsplit("\n", 1)[-1]) + 1
                return Location(self.file, line_index + 1, column)
            return Location(self.file, pos.line, pos.col)
        shift = 1 if pos.style in ("'", '"') else 0
        return Location(self.file, pos.line, pos.col + shift + offset)

    def _in_folded(self, pos, lines: list[str], offset: int) -> Location:
        """Folded text (``>``, ``>-``): each content line became its words plus one space."""
        consumed = 0
        for index in range(pos.line, len(lines)):
            content = lines[index]
            stripped = content.strip()
            if not stripped:
                break  # a blank line folds into a newline: stop at the paragraph
            indent = len(content) - len(content.lstrip(" "))
            if offset < consumed + len(stripped) + 1:
                return Location(self.file, index + 1, indent + offset - consumed + 1)
            consumed += len(stripped) + 1
        first = lines[pos.line] if pos.line < len(lines) else ""
        return Location(self.file, pos.line + 1, len(first) - len(first.lstrip(" ")) + 1)


def _get(data: Any, path: PathKey) -> Any:
    for part in path:
        data = data[part]
    return data


class _Builder:
    def __init__(self, source: Source, problems: list[Problem]):
        self.source = source
        self.problems = problems
        self.nodes = 0

    def build(self, node: yaml.Node, path: PathKey, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooMany(node)
        if depth > MAX_DEPTH:
            raise _TooDeep(node)
        mark = node.start_mark
        style = getattr(node, "style", None) or None  # libyaml gives '' for plain scalars
        self.source.values[path] = Pos(mark.line + 1, mark.column + 1, style)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self._problem(key_node, "PW012", "a mapping key must be a plain name", "write the key as text")
                    continue
                key = self._scalar(key_node)
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    key = str(key_node.value)
                if key in result:
                    first = self.source.keys[path + (key,)]
                    self._problem(
                        key_node, "PW006", f"duplicate key '{key}'", f"first given at line {first.line}; keep one"
                    )
                    continue
                self.source.keys[path + (key,)] = Pos(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                result[key] = self.build(value_node, path + (key,), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        """The scalar's value; a value its tag cannot hold (`!!int abc`, an integer of thousands of
        digits) is a problem, and its text is kept. A date that does not exist (2026-13-01,
        2024-02-30) is kept as text without a problem: the schema then says what was expected
        there (a date as YYYY-MM-DD, or text such as a version), at its line."""
        try:
            return _scalar(node)
        except yaml.constructor.ConstructorError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            text = str(node.value)
            kind = node.tag.rsplit(":", 1)[-1]
            if kind == "timestamp":  # a date that does not exist stays text: where a date belongs, the schema says so at its line
                pass
            elif kind == "int" and len(text) > 100:
                self._problem(node, "PW012", f"a number of {len(text)} digits", "write a number of at most a few dozen digits")
            else:
                self._problem(node, "PW012", f"'{text[:40]}' cannot be read as {kind}", "remove the !!tag, or write a value of that kind")
            return text

    def _problem(self, node: yaml.Node, code: str, message: str, hint: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(Location(self.source.file, mark.line + 1, mark.column + 1), code, message, hint))


class _TooDeep(Exception):
    def __init__(self, node: yaml.Node):
        self.node = node


class _TooMany(Exception):
    def __init__(self, node: yaml.Node):
        self.node = node


_CONSTRUCTOR = yaml.SafeLoader("")


def _scalar(node: yaml.Node) -> Any:
    """Resolve a scalar node the way safe_load would (ints, floats, bools, null, dates); a value
    its tag cannot hold raises (``Reader._scalar`` makes it a problem at its line)."""
    return _CONSTRUCTOR.construct_object(node, deep=True)


def read_yaml(path: Path, display: str | None = None) -> tuple[Source | None, list[Problem]]:
    """Read one YAML file. Returns the source (None when unusable) and the problems found."""
    name = display or str(path)
    whole = Location(name)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, [Problem(whole, "PW007", "no such file", "check the path")]
    except IsADirectoryError:
        return None, [Problem(whole, "PW007", "is a folder, not a file", "name a pathway.yaml file or a folder of them")]
    except OSError as exc:
        return None, [Problem(whole, "PW007", f"cannot read the file: {exc.strerror}", "check its permissions")]
    if len(raw) > MAX_BYTES:
        size = f"{len(raw) / 1_000_000:.1f} MB"
        return None, [
            Problem(
                Location(name, 1, 1),
                "PW004",
                f"the file is {size}, over the {MAX_BYTES // 1_000_000} MB limit for a pathway definition",
                "split it, or check that this is the file you meant",
            )
        ]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [
            Problem(
                Location(name, line, col),
                "PW002",
                f"byte 0x{raw[exc.start]:02x} is not valid UTF-8",
                "save the file as UTF-8",
            )
        ]
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        too_deep = _deeper_than(text, MAX_DEPTH)
        if too_deep is not None:
            return None, [Problem(Location(name, too_deep.line + 1, too_deep.column + 1), "PW005", f"the YAML nests deeper than {MAX_DEPTH} levels", "flatten it")]
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = exc.problem or "malformed YAML"
        context = f" {exc.context}" if exc.context else ""
        char = text.splitlines()[line - 1][col - 1 : col] if mark and line <= len(text.splitlines()) else ""
        hint = _yaml_hint(message, char)
        opened = exc.context_mark
        if opened is not None and mark is not None and (opened.line, opened.column) != (mark.line, mark.column):
            hint = f"it started at line {opened.line + 1}, column {opened.column + 1}; {hint}"
        return None, [Problem(Location(name, line, col), "PW001", f"{message}{context}", hint)]
    except yaml.YAMLError as exc:
        return None, [Problem(Location(name, 1, 1), "PW001", str(exc).splitlines()[0], "check the YAML syntax")]
    except RecursionError:
        return None, [Problem(Location(name, 1, 1), "PW005", f"the YAML nests deeper than {MAX_DEPTH} levels", "flatten it")]
    if node is None:
        return None, [Problem(Location(name, 1, 1), "PW003", "the file is empty", "start from a shipped pathway, e.g. pathways/diabetes/pathway.yaml")]
    source = Source(name, text, None)
    problems: list[Problem] = []
    try:
        source.data = _Builder(source, problems).build(node, (), 0)
    except _TooDeep as exc:
        mark = exc.node.start_mark
        return None, [Problem(Location(name, mark.line + 1, mark.column + 1), "PW005", f"the YAML nests deeper than {MAX_DEPTH} levels", "flatten it")]
    except _TooMany as exc:
        mark = exc.node.start_mark
        return None, [Problem(Location(name, mark.line + 1, mark.column + 1), "PW008", f"the YAML expands to more than {MAX_NODES} nodes", "remove aliases that repeat large parts")]
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, [Problem(Location(name, line, col), "PW012", exc.problem or "cannot read this value", "write plain text, numbers, lists and mappings")]
    return source, problems


def _deeper_than(text: str, limit: int) -> yaml.Mark | None:
    """Where the event stream first nests deeper than ``limit``; None if it never does.

    libyaml's composer recurses in C and crashes the process on deep nesting, so depth is
    measured on the (iterative) event stream before any node is composed.
    """
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > limit:
                return event.start_mark
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return None


def _yaml_hint(message: str, char: str) -> str:
    if "tab" in message or char == "\t":
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in message:
        return "this line is indented deeper than the key above it, or a value holds ': ' and needs quotes"
    if "could not find expected ':'" in message:
        return "a key needs ':' after it; check the indentation of the line before"
    if "found character" in message and "cannot start any token" in message:
        return "quote the value"
    return "check the indentation and quoting around this place"
