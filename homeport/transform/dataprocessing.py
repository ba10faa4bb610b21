"""Batch transform's DataProcessing: InputFilter, JoinSource and OutputFilter over single records.

SageMaker lets a transform job drop parts of each input record before it reaches the container
(``InputFilter``), glue the original input record to the container's answer (``JoinSource``) and
keep only part of that joined record in the output file (``OutputFilter``). The filters are JSONPath
expressions, and only for CSV and JSON / JSON Lines data:

* a CSV record (one line) is treated as a JSON array of its field strings, so only index
  selectors make sense there (``$[1:]`` drops an ID column, ``$[0,-1]`` keeps the first and last);
  the result is written back as one RFC 4180 line;
* a JSON record is a JSON value and any selector applies (``$.features``,
  ``$['id','SageMakerOutput']``);
* joining CSV appends the output fields to the input fields; joining JSON adds the output under
  ``SageMakerOutput`` to an input object, or, when the input is not an object, makes a new object
  ``{"SageMakerInput": input, "SageMakerOutput": output}``.

A range's end is inclusive, as SageMaker documents it ("``$[1:4]`` specifies the second through
fifth columns"; an omitted end "uses the last element"), not Python's or Jayway JsonPath's
exclusive end. A range past either end of the array is clipped, while an index outside the record
is an error, as SageMaker documents for OutputFilter (only where a wildcard or an index list has fanned
out to several arrays is a misfit passed over, as in Jayway).

The JSONPath engine is written here rather than borrowed: SageMaker accepts a small subset
(``$``, ``.name``, ``*``, ``['a','b']``, ``[1,-1]``, ``[start:end]`` and an index list with one
range such as ``$[0,5:]``) and gives it result shapes of its own (a bracketed list of names makes one
object, ``$[0]`` of a CSV row is a single field). jsonpath-ng, the obvious library, cannot parse the
documented ``$[0,5:]``, returns name lists as loose matches, and accepts filters, ``..`` and ``|``
that SageMaker rejects; wrapping it would mean walking and re-checking its AST anyway.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DataProcessing",
    "DataProcessingError",
    "JsonPath",
    "RecordFormat",
    "record_format",
    "split_output",
]

DEFAULT_FILTER = "$"
OUTPUT_KEY = "SageMakerOutput"
INPUT_KEY = "SageMakerInput"

_JSON_TYPES = {
    "application/json",
    "application/jsonlines",
    "application/x-jsonlines",
    "application/jsonl",
    "application/json-lines",
}


class DataProcessingError(ValueError):
    """A DataProcessing setting or a record it cannot handle; the message is fit for FailureReason."""


class RecordFormat(enum.Enum):
    CSV = "csv"
    JSON = "json"


def record_format(media_type: str | None) -> RecordFormat | None:
    """The record format DataProcessing uses for a ContentType/Accept value, None when unsupported."""
    if not media_type:
        return None
    base = media_type.split(";", 1)[0].strip().lower()
    if base == "text/csv":
        return RecordFormat.CSV
    if base in _JSON_TYPES or base.endswith("+json"):
        return RecordFormat.JSON
    return None


# --------------------------------------------------------------------------------------------------
# JSONPath: the subset SageMaker documents


@dataclass(frozen=True)
class _Name:
    key: str


@dataclass(frozen=True)
class _Names:
    keys: tuple[str, ...]


@dataclass(frozen=True)
class _Wildcard:
    pass


@dataclass(frozen=True)
class _Indices:
    items: tuple[int | slice, ...]


_Segment = _Name | _Names | _Wildcard | _Indices

# Characters that end a dot-notated name or cannot be part of one; anything fancier needs ['...'].
_NAME_STOP = set(".[")
_NAME_FORBIDDEN = set("]*,'\"()?@$ \t")


class _FilterFailure(Exception):
    """Raised while applying a path; DataProcessing adds the expression and record number."""


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"an array of {len(value)} element{'s' if len(value) != 1 else ''}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


class JsonPath:
    """A compiled SageMaker DataProcessing JSONPath expression."""

    def __init__(self, expression: str | None) -> None:
        # The API allows an empty string (minimum length 0); like None it means the default "$".
        text = (expression or "").strip() or DEFAULT_FILTER
        self.expression = text
        self.segments: tuple[_Segment, ...] = tuple(_parse(text))
        self.is_identity = not self.segments
        self.definite = _definite(self.segments)

    def __repr__(self) -> str:
        return f"JsonPath({self.expression!r})"

    def apply(self, root: Any) -> Any:
        """Select from ``root``: one value for a definite path, an object for a trailing ['a','b'],
        otherwise the list of matches (Jayway JsonPath's shapes, which SageMaker follows)."""
        if self.is_identity:
            return root
        nodes = [root]
        last = len(self.segments) - 1
        for position, segment in enumerate(self.segments):
            merge = isinstance(segment, _Names) and position == last
            # As in Jayway: a node reached through a definite path must fit the next step, while
            # nodes fanned out by '*', a name list or an index list that do not fit are passed over.
            strict = _definite(self.segments[:position])
            nodes = [child for node in nodes for child in _step(segment, node, merge, strict)]
        if self.definite:
            return nodes[0]
        if isinstance(self.segments[-1], _Names) and _definite(self.segments[:-1]):
            return nodes[0]
        return nodes


def _step(segment: _Segment, node: Any, merge: bool, strict: bool) -> list[Any]:
    """One segment applied to one node; a misfit raises when ``strict``, else selects nothing."""

    def misfit(reason: str) -> list[Any]:
        if strict:
            raise _FilterFailure(reason)
        return []

    if isinstance(segment, _Name):
        if not isinstance(node, dict):
            return misfit(f"cannot select key {segment.key!r} from {_kind(node)}")
        if segment.key not in node:
            return misfit(f"key {segment.key!r} not found")
        return [node[segment.key]]
    if isinstance(segment, _Names):
        if not isinstance(node, dict):
            return misfit(f"cannot select keys {list(segment.keys)!r} from {_kind(node)}")
        if merge:
            # A trailing name list builds one object of the keys present, as in OutputFilter
            # "$['id','SageMakerOutput']"; absent keys are left out, as Jayway does.
            return [{key: node[key] for key in segment.keys if key in node}]
        return [node[key] for key in segment.keys if key in node]
    if isinstance(segment, _Wildcard):
        if isinstance(node, dict):
            return list(node.values())
        if isinstance(node, list):
            return list(node)
        return misfit(f"cannot apply '*' to {_kind(node)}")
    if not isinstance(node, list):
        return misfit(f"cannot index {_kind(node)}")
    picked: list[Any] = []
    for item in segment.items:
        if isinstance(item, slice):
            picked.extend(node[item])
        elif -len(node) <= item < len(node):
            picked.append(node[item])
        elif strict:
            # SageMaker documents an error for indexes outside the record rather than a silent gap.
            raise _FilterFailure(f"index {item} is out of range for {_kind(node)}")
    return picked


def _definite(segments: tuple[_Segment, ...]) -> bool:
    """Whether a path selects at most one value (names and single indexes only), as Jayway decides."""
    return all(
        isinstance(s, _Name)
        or (isinstance(s, _Indices) and len(s.items) == 1 and isinstance(s.items[0], int))
        for s in segments
    )


def _parse(text: str) -> list[_Segment]:
    def bad(reason: str) -> DataProcessingError:
        return DataProcessingError(f"Invalid JsonPath: {text}: {reason}")

    if not text.startswith("$"):
        raise bad("an expression must start with '$'")
    segments: list[_Segment] = []
    i, n = 1, len(text)
    while i < n:
        char = text[i]
        if char == ".":
            if text.startswith("..", i):
                raise bad("deep scan '..' is not supported")
            i += 1
            if i == n:
                raise bad("the expression ends with '.'")
            if text[i] == "[":
                continue  # "$.a.['b','c']" is the documented spelling of "$.a['b','c']"
            if text[i] == "*":
                segments.append(_Wildcard())
                i += 1
                continue
            start = i
            while i < n and text[i] not in _NAME_STOP:
                if text[i] in _NAME_FORBIDDEN:
                    raise bad(f"unexpected {text[i]!r} at position {i}")
                i += 1
            if i == start:
                raise bad(f"a name is missing at position {start}")
            segments.append(_Name(text[start:i]))
        elif char == "[":
            end = _closing_bracket(text, i)
            if end < 0:
                raise bad(f"the '[' at position {i} is not closed")
            segments.append(_parse_bracket(text[i + 1 : end], bad))
            i = end + 1
        else:
            raise bad(f"unexpected {char!r} at position {i}")
    return segments


def _closing_bracket(text: str, opening: int) -> int:
    quote = ""
    i = opening + 1
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "]":
            return i
        i += 1
    return -1


def _parse_bracket(body: str, bad: Any) -> _Segment:
    inner = body.strip()
    if not inner:
        raise bad("empty brackets '[]'")
    if inner == "*":
        return _Wildcard()
    if inner[0] in "?(":
        raise bad("filter and script expressions are not supported")
    if inner[0] in "'\"":
        names = _parse_names(inner, bad)
        # One bracketed name is just a key ("$['a']" is "$.a"); only a list builds an object.
        return _Name(names[0]) if len(names) == 1 else _Names(tuple(names))
    items: list[int | slice] = []
    for raw in inner.split(","):
        part = raw.strip()
        if not part:
            raise bad(f"an empty entry in '[{body}]'")
        if ":" in part:
            bounds = part.split(":")
            if len(bounds) != 2:
                raise bad(f"slice steps are not supported: '[{part}]'")
            start, end = (_parse_int(b, bad) if b.strip() else None for b in bounds)
            # SageMaker documents the end of a range as inclusive ("$[1:4] specifies the second
            # through fifth columns"; an omitted end "uses the last element"), unlike Python and
            # Jayway JsonPath; -1 as the end therefore reaches the last element.
            stop = None if end is None or end == -1 else end + 1
            items.append(slice(start, stop))
        else:
            items.append(_parse_int(part, bad))
    if sum(isinstance(item, slice) for item in items) > 1:
        # SageMaker's own message for this case; one range plus indexes ("$[0,5:]") is fine.
        raise bad(
            "only single range filters of format (eg: [1:5]) are supported. "
            f"Format [{inner}] is not supported"
        )
    return _Indices(tuple(items))


def _parse_int(token: str, bad: Any) -> int:
    stripped = token.strip()
    digits = stripped[1:] if stripped.startswith("-") else stripped
    if not digits.isdigit() or not digits.isascii():
        raise bad(f"{stripped!r} is not an array index")
    return int(stripped)


def _parse_names(inner: str, bad: Any) -> list[str]:
    names: list[str] = []
    i, n = 0, len(inner)
    while True:
        while i < n and inner[i].isspace():
            i += 1
        if i == n or inner[i] not in "'\"":
            raise bad(f"expected a quoted name in '[{inner}]'")
        quote, i = inner[i], i + 1
        chars: list[str] = []
        while i < n and inner[i] != quote:
            if inner[i] == "\\" and i + 1 < n:
                i += 1
            chars.append(inner[i])
            i += 1
        if i == n:
            raise bad(f"unterminated name in '[{inner}]'")
        names.append("".join(chars))
        i += 1
        while i < n and inner[i].isspace():
            i += 1
        if i == n:
            return names
        if inner[i] != ",":
            raise bad(f"expected ',' between names in '[{inner}]'")
        i += 1


# --------------------------------------------------------------------------------------------------
# Records


def _decode(record: bytes) -> str:
    text = record.decode("utf-8")
    # The first record of a file may carry a byte-order mark; it is not part of the first field.
    return text[1:] if text.startswith("\ufeff") else text


def _parse_record(record: bytes, fmt: RecordFormat, subject: str) -> Any:
    """Read one record as JSON would see it; ``subject`` names it in errors ("the input record")."""
    try:
        text = _decode(record)
    except UnicodeDecodeError as exc:
        raise _FilterFailure(f"{subject} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if fmt is RecordFormat.JSON:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _FilterFailure(f"{subject} is not valid JSON ({exc.msg} at column {exc.colno})") from None
    # Records are single lines; a line break the splitter left on is not part of the record.
    text = text.rstrip("\r\n")
    try:
        # Read as a file would be so a stray line break shows up as a second row, not a parser error.
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise _FilterFailure(f"{subject} is not valid CSV ({exc})") from None
    if len(rows) > 1:
        raise _FilterFailure(f"{subject} holds more than one CSV line")
    return rows[0] if rows else []


def _csv_field(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise _FilterFailure(f"the selection holds {_kind(value)}, which cannot be a CSV field")
    return json.dumps(value)  # numbers and booleans as JSON spells them: 1.5, true


def _serialize(value: Any, fmt: RecordFormat) -> bytes:
    if fmt is RecordFormat.JSON:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if isinstance(value, dict):
        raise _FilterFailure("the selection is an object, which cannot be written as a CSV record")
    fields = value if isinstance(value, list) else [value]
    buffer = io.StringIO()
    # The writer's own "\r\n" terminator is kept on purpose: QUOTE_MINIMAL quotes fields holding
    # the terminator's characters, so an embedded CR or LF stays inside quotes; it is cut off after.
    csv.writer(buffer, lineterminator="\r\n").writerow([_csv_field(f) for f in fields])
    return buffer.getvalue()[:-2].encode("utf-8")


# --------------------------------------------------------------------------------------------------
# DataProcessing


def _where(record_number: int | None) -> str:
    return f"record {record_number}" if record_number is not None else "the record"


@dataclass(frozen=True)
class DataProcessing:
    """A transform job's DataProcessing, ready to apply record by record.

    ``input_format`` is the format of input records (from ContentType), ``output_format`` that of the
    container's answers and of the output file (from Accept, else ContentType). Either is None only
    when nothing needs it.
    """

    input_filter: JsonPath
    output_filter: JsonPath
    join_input: bool
    input_format: RecordFormat | None
    output_format: RecordFormat | None

    @property
    def active(self) -> bool:
        """False when every setting is the default, so callers can skip per-record work."""
        return not (self.input_filter.is_identity and self.output_filter.is_identity and not self.join_input)

    @property
    def transforms_output(self) -> bool:
        """Whether answers need per-record work (a join or an OutputFilter); when only InputFilter is
        set, a batch's answer can be written as the container gave it, without splitting."""
        return self.join_input or not self.output_filter.is_identity

    @classmethod
    def from_spec(
        cls, spec: dict[str, Any] | None, content_type: str | None, accept: str | None
    ) -> DataProcessing:
        """Compile a CreateTransformJob ``DataProcessing`` value; raises DataProcessingError when a
        filter is not a supported JSONPath or the data is not CSV/JSON where the settings need it."""
        spec = spec or {}
        input_filter = JsonPath(spec.get("InputFilter"))
        output_filter = JsonPath(spec.get("OutputFilter"))
        join_source = spec.get("JoinSource") or "None"
        if join_source not in ("Input", "None"):
            raise DataProcessingError(f"JoinSource must be 'Input' or 'None', not {join_source!r}")
        join_input = join_source == "Input"
        # Each side falls back to the other only when unset: Accept is optional and means "the same".
        in_fmt = record_format(content_type if content_type else accept)
        out_fmt = record_format(accept if accept else content_type)
        if (join_input or not input_filter.is_identity) and in_fmt is None:
            raise DataProcessingError(
                "DataProcessing InputFilter and JoinSource need ContentType text/csv, application/json or "
                f"application/jsonlines; ContentType is {content_type or 'not set'}"
            )
        if (join_input or not output_filter.is_identity) and out_fmt is None:
            raise DataProcessingError(
                "DataProcessing OutputFilter and JoinSource need Accept text/csv, application/json or "
                f"application/jsonlines; Accept is {accept or 'not set'}"
            )
        return cls(input_filter, output_filter, join_input, in_fmt, out_fmt)

    def filter_input(self, record: bytes, *, record_number: int | None = None) -> bytes:
        """Apply InputFilter to one input record (a CSV line or a JSON value, without line break)."""
        if self.input_filter.is_identity:
            return record
        assert self.input_format is not None  # from_spec guarantees it whenever the filter is set
        try:
            value = _parse_record(record, self.input_format, "the record")
            return _serialize(self.input_filter.apply(value), self.input_format)
        except _FilterFailure as exc:
            expression = self.input_filter.expression
            raise DataProcessingError(
                f"InputFilter {expression!r} cannot be applied to {_where(record_number)}: {exc}"
            ) from None

    def join_and_filter_output(
        self, input_record: bytes, output_record: bytes, *, record_number: int | None = None
    ) -> bytes:
        """Join one container answer with its unfiltered input record (when JoinSource is Input),
        apply OutputFilter and give the output-file record, without line break."""
        if not self.join_input and self.output_filter.is_identity:
            return output_record
        assert self.output_format is not None  # from_spec guarantees it whenever this is needed
        stage = "JoinSource 'Input'" if self.join_input else f"OutputFilter {self.output_filter.expression!r}"
        try:
            value = _parse_record(output_record, self.output_format, "the container's answer")
            if self.join_input:
                assert self.input_format is not None
                value = self._join(_parse_record(input_record, self.input_format, "the input record"), value)
                stage = f"OutputFilter {self.output_filter.expression!r}"
            return _serialize(self.output_filter.apply(value), self.output_format)
        except _FilterFailure as exc:
            raise DataProcessingError(
                f"{stage} cannot be applied to {_where(record_number)}: {exc}"
            ) from None

    def split_output(self, response: bytes, count: int, accept: str | None) -> list[bytes]:
        """The module's :func:`split_output`, reachable from the compiled settings."""
        return split_output(response, count, accept)

    def _join(self, input_value: Any, output_value: Any) -> Any:
        if self.output_format is RecordFormat.CSV:
            if not isinstance(input_value, list):
                raise _FilterFailure(
                    f"the input is {_kind(input_value)}, which cannot be joined with CSV output"
                )
            return [*input_value, *output_value]
        if isinstance(input_value, dict):
            # SageMakerOutput is reserved: an input key of that name is overwritten, as documented.
            return {**input_value, OUTPUT_KEY: output_value}
        return {INPUT_KEY: input_value, OUTPUT_KEY: output_value}


# --------------------------------------------------------------------------------------------------
# Splitting a MultiRecord answer


def split_output(response: bytes, count: int, accept: str | None) -> list[bytes]:
    """Split the container's answer to a MultiRecord batch of ``count`` records into one answer per
    record, each without line break.

    A single record's answer is the whole response (a JSON answer may span lines). Otherwise a JSON
    response that is one top-level array gives its elements; anything else gives its lines, the way
    CSV and JSON Lines containers answer. Raises DataProcessingError when the numbers differ.
    """
    fmt = record_format(accept)
    body = response.rstrip(b"\r\n")
    if count == 1 and (fmt is RecordFormat.JSON or b"\n" not in body):
        return [body]
    if count == 0 and not body.strip():
        return []
    if fmt is RecordFormat.JSON and count != 1:
        try:
            doc = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            doc = _NOT_ONE_DOCUMENT  # several JSON Lines, most likely
        if isinstance(doc, list):
            if len(doc) != count:
                raise _count_error(len(doc), count)
            return [json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode("utf-8") for e in doc]
        if doc is not _NOT_ONE_DOCUMENT:
            raise _count_error(1, count)
    lines = [line.removesuffix(b"\r") for line in body.split(b"\n")] if body else []
    if len(lines) != count:
        raise _count_error(len(lines), count)
    return lines


_NOT_ONE_DOCUMENT = object()


def _count_error(returned: int, count: int) -> DataProcessingError:
    def plural(n: int, word: str) -> str:
        return f"{n} {word}" if n == 1 else f"{n} {word}s"

    return DataProcessingError(
        f"the container returned {plural(returned, 'record')} for {plural(count, 'input')}"
    )
