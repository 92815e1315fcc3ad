"""Read the JSON the project is given (patient files, FHIR bundles, NDJSON lines, `--data`),
within limits, and say what is wrong and how to fix it when a file is refused.

Every JSON reader of the project goes through here, so a hostile or broken file ends in one
``JsonFileError`` (which names the file, and the line and column where there is one) and never
in a traceback: too large, a gzip file that is truncated or corrupt (or expands beyond the
limit), not UTF-8, malformed, nested deeper than any patient file is, a number too long to
read, NaN/Infinity (not JSON), or an object with the same key twice (which value counts?).
The limits are named here and listed in docs/errors.md:

- ``MAX_DOCUMENT_BYTES``: one JSON document (a facts file, a FHIR Bundle), after decompression.
  The largest Synthea bundle we met is about 4 MB; a bundle over the limit is better sent as a
  FHIR bulk-data export (NDJSON), which is read one line at a time.
- ``MAX_LINE_BYTES``: one NDJSON line (one FHIR resource).
- ``MAX_EXPORT_BYTES``: one NDJSON file of a bulk-data export.
- ``MAX_DATA_BYTES``: the values of one recorded step (`pathways record --data`).
- ``MAX_PROBLEMS``: bad lines reported from one bulk-data export before reading stops.
- ``MAX_DEPTH``: nesting of objects and arrays (a FHIR Observation with components nests about
  eight levels deep). Python's own parser recurses, so without a limit a deep document ends in
  a ``RecursionError``.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import sys
import zlib
from pathlib import Path
from typing import Any, Iterator

MAX_DOCUMENT_BYTES = 50_000_000
MAX_LINE_BYTES = 5_000_000
MAX_EXPORT_BYTES = 2_000_000_000
MAX_DATA_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_PROBLEMS = 50

_MB = 1_000_000
_CHUNK = 1 << 20
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]|[\]}]', re.DOTALL)


class JsonFileError(ValueError):
    """A file (or a line of one) that cannot be read as JSON: where, what and the fix."""

    def __init__(self, where: str, message: str, fix: str):
        super().__init__(f"{where}: {message}; {fix}")
        self.where, self.message, self.fix = where, message, fix


def read_limited(path: Path, limit: int = MAX_DOCUMENT_BYTES, what: str = "a patient file") -> bytes:
    """The bytes of ``path`` (decompressed when its name ends in .gz), refused over ``limit``."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise JsonFileError(str(path), "is a folder, not a file", "name the file itself")
        if size > limit and not path.name.lower().endswith(".gz"):
            raise JsonFileError(str(path), f"the file is {_size(size)}, over the {_size(limit)} limit for {what}", _smaller(what))
        with path.open("rb") as handle:
            raw = _read_at_most(handle, limit + 1)
    except OSError as exc:
        raise JsonFileError(str(path), f"cannot read: {exc.strerror or exc}", "check the path and its permissions") from None
    if path.name.lower().endswith(".gz"):
        return _gunzip(path, raw, limit, what)
    return raw


def _gunzip(path: Path, raw: bytes, limit: int, what: str) -> bytes:
    if len(raw) > limit:
        raise JsonFileError(str(path), f"the compressed file is over the {_size(limit)} limit for {what}", _smaller(what))
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as handle:
            data = _read_at_most(handle, limit + 1)
    except EOFError:
        raise JsonFileError(str(path), "the gzip file is truncated (it ends before its data does)", "copy or download it again") from None
    except (OSError, zlib.error) as exc:
        raise JsonFileError(str(path), f"not a valid gzip file ({exc})", "give the file uncompressed, or compress it again with gzip") from None
    if len(data) > limit:
        raise JsonFileError(str(path), f"the file expands to more than the {_size(limit)} limit for {what}", _smaller(what))
    return data


def _read_at_most(handle, count: int) -> bytes:
    """Up to ``count`` bytes, read in chunks: read(count) would allocate all of them at once."""
    chunks, total = [], 0
    while total < count and (chunk := handle.read(min(_CHUNK, count - total))):
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes, where: str, line: int = 0) -> Any:
    """Parse one JSON document read by ``read_limited``; ``where`` names it. For an NDJSON
    line, ``where`` is the file and ``line`` its number (places are then that line's columns)."""
    if line:
        return _parse(raw, lambda at_line, col: f"{where}:{line}:{col}" if col else f"{where}:{line}")
    return _parse(raw, lambda at_line, col: f"{where}:{at_line}:{col}" if at_line else where)


def _parse(raw: bytes, at) -> Any:
    try:
        data = json.loads(raw, parse_constant=_no_constant, object_pairs_hook=_object)
    except UnicodeDecodeError as exc:
        line, col = _line_col(raw, exc.start)
        raise JsonFileError(at(line, col), f"byte 0x{raw[exc.start]:02x} is not UTF-8 text", "save the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise JsonFileError(at(exc.lineno, exc.colno), f"malformed JSON: {exc.msg}", _json_fix(exc.msg)) from None
    except _Constant as exc:
        raise JsonFileError(at(0, 0), f"{exc.args[0]} is not a JSON value", "write a number, or leave the value out") from None
    except _Duplicate as exc:
        raise JsonFileError(at(0, 0), f"an object has the key {exc.args[0]!r} twice", "keep one (which of the two values counts is not clear)") from None
    except RecursionError:
        raise _too_deep(raw, at) from None
    except ValueError:  # an integer with more digits than Python converts (sys.get_int_max_str_digits)
        raise JsonFileError(at(0, 0), f"a number has more than {sys.get_int_max_str_digits()} digits", "write numbers with at most a few dozen digits") from None
    if _depth_over(data, MAX_DEPTH):
        raise _too_deep(raw, at)
    return data


def read_json(path: Path, limit: int = MAX_DOCUMENT_BYTES, what: str = "a patient file") -> Any:
    """``read_limited`` then ``parse_json``: one JSON document from a file (.json or .json.gz)."""
    return parse_json(read_limited(path, limit, what), str(path))


def read_ndjson_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, value or JsonFileError) for each non-blank line of an NDJSON file, one line in
    memory at a time; a line over ``MAX_LINE_BYTES`` is refused without being read whole.
    Raises JsonFileError when the file itself cannot be read or is over ``MAX_EXPORT_BYTES``."""
    try:
        size = path.stat().st_size
        if size > MAX_EXPORT_BYTES:
            raise JsonFileError(str(path), f"the file is {_size(size)}, over the {_size(MAX_EXPORT_BYTES)} limit for one NDJSON file", "split the export into several files")
        handle = path.open("rb")
    except OSError as exc:
        raise JsonFileError(str(path), f"cannot read: {exc.strerror or exc}", "check the path and its permissions") from None
    with handle:
        number = 0
        while raw := handle.readline(MAX_LINE_BYTES + 1):
            number += 1
            where = f"{path}:{number}"
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                yield where, JsonFileError(where, f"the line is over the {_size(MAX_LINE_BYTES)} limit for one resource", "check that this is a FHIR bulk-data export (one resource per line)")
                continue
            if not raw.strip():
                continue
            try:
                yield where, parse_json(raw, str(path), number)
            except JsonFileError as exc:
                yield where, exc


class _Constant(Exception):
    pass


class _Duplicate(Exception):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a key given twice is refused (Python's json keeps the last silently)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        raise _Duplicate(next(key for key, _ in pairs if key in seen or seen.add(key)))
    return data


def _no_constant(name: str):
    raise _Constant(name)


def _depth_over(data: Any, limit: int) -> bool:
    """Whether objects and arrays nest deeper than ``limit`` (iteratively: no recursion)."""
    stack = [(data, 1)] if isinstance(data, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _too_deep(raw: bytes, at) -> JsonFileError:
    depth, place = 0, None
    for token in _TOKENS.finditer(raw):
        first = token.group()[:1]
        if first in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                place = token.start()
                break
        elif first in (b"]", b"}"):
            depth -= 1
    line, col = _line_col(raw, place) if place is not None else (0, 0)
    return JsonFileError(
        at(line, col),
        f"the JSON nests deeper than {MAX_DEPTH} levels",
        "check that this is the file you meant: nothing pathways reads nests this deep",
    )


def _line_col(raw: bytes, offset: int) -> tuple[int, int]:
    line = raw.count(b"\n", 0, offset) + 1
    return line, offset - (raw.rfind(b"\n", 0, offset) + 1) + 1


def _json_fix(message: str) -> str:
    if message.startswith("Expecting property name"):
        return "object keys are written in double quotes, and a trailing comma is not allowed"
    if message.startswith("Expecting value"):
        return "a value is missing here (or the file is empty, or cut off)"
    if message.startswith("Unterminated string"):
        return "close the string with a double quote (the file may be cut off)"
    if message.startswith("Extra data"):
        return "the file holds more than one JSON value; for one resource per line, name it .ndjson"
    return "check the JSON syntax here"


def _size(count: int) -> str:
    return f"{count / _MB:.1f} MB" if count >= _MB else f"{count} bytes"


def _smaller(what: str) -> str:
    if what == "a patient file":
        return "check that this is the file you meant; a larger FHIR export can be given as bulk-data NDJSON"
    return "check that this is the file you meant"
