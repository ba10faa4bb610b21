"""Request validation driven by botocore's service model, worded the way AWS (Coral) words it.

Owns everything between "the body decoded as JSON" and "the handler may trust its input":

* JSON type checks per member shape. A wrong JSON type is what AWS's deserializer rejects before any
  validation runs, so it raises :class:`SerializationException` at once with AWS's wording
  (``STRING_VALUE can not be converted to an Integer``, ``Start of list found where not expected``...).
* Model constraints botocore does not check client-side (enums, max lengths, patterns, ranges) plus
  required members, collected into ONE :class:`ValidationException` in Coral's format::

      2 validation errors detected: Value null at 'roleArn' failed to satisfy constraint: Member must
      not be null; Value '-1' at 'resourceConfig.instanceCount' failed to satisfy constraint: Member
      must have value greater than or equal to 0

* Patterns are the model's Java regular expressions, translated by :mod:`homeport.api.java_regex`.

Each shape is compiled once into a small tree of validator nodes (regexes included), cached per
model, so a request costs one walk over its own values.
"""

from __future__ import annotations

import binascii
import collections
import dataclasses
import datetime
import decimal
import re
import threading
import weakref
from collections.abc import Iterator, MutableMapping
from typing import Any

from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from homeport.api.java_regex import PatternReport, compile_java_pattern, pattern_report, translate_java_regex
from homeport.errors import SerializationException, ValidationException

__all__ = [
    "PatternReport",
    "compile_java_pattern",
    "format_validation_errors",
    "lower_first",
    "pattern_report",
    "precompile",
    "translate_java_regex",
    "validate_input",
    "validate_shape_value",
]


# --------------------------------------------------------------------------------------------------
# Public entry points


def validate_input(operation: OperationModel, params: object) -> None:
    """Check a decoded JSON request body against ``operation``'s input shape.

    Raises SerializationException for JSON of the wrong type (checked first, as AWS deserializes
    before it validates) and one ValidationException listing every constraint violation.
    Members the model does not know are ignored, as AWS ignores them.
    """
    if not isinstance(params, dict):
        if isinstance(params, list):
            raise SerializationException("Start of list found where not expected")
        raise SerializationException("The request body must be a JSON object")
    shape = operation.input_shape
    if shape is None:
        return
    errors = validate_shape_value(shape, params, "")
    if errors:
        raise ValidationException(format_validation_errors(errors))


def validate_shape_value(shape: Shape, value: object, path: str = "") -> list[str]:
    """Every constraint violation of ``value`` against ``shape``, as Coral-worded entries.

    ``path`` is the dotted wire path of ``value`` ("" for a request body). Raises
    SerializationException on the first JSON type mismatch.
    """
    errors: list[str] = []
    _node_for(shape).check(value, path, errors)
    return errors


def precompile(model: ServiceModel) -> None:
    """Build the validators (and compile the patterns) of every operation input up front.

    Optional: validators are otherwise built on first use, which makes the first request of an
    operation pay for them (the first Unicode-class pattern builds a table, a few tenths of a second).
    """
    for name in model.operation_names:
        shape = model.operation_model(name).input_shape
        if shape is not None:
            _node_for(shape)


def format_validation_errors(errors: list[str]) -> str:
    """Coral's summary line: ``N validation error(s) detected: e1; e2``."""
    count = len(errors)
    return f"{count} validation error{'s' if count != 1 else ''} detected: " + "; ".join(errors)


def lower_first(name: str) -> str:
    """A member name as Coral prints it in a path: the model name with its first letter lower-cased."""
    return name[:1].lower() + name[1:]


# --------------------------------------------------------------------------------------------------
# Rendering values and bounds the way Java prints them


def _java_double(number: float) -> str:
    """``Double.toString``: 1.0, 0.25, 1.0E7, 1.0E-4 (Python would print 10000000.0 and 0.0001)."""
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "-0.0" if str(number).startswith("-") else "0.0"
    sign = "-" if number < 0 else ""
    magnitude = abs(number)
    # repr gives the shortest digits that round-trip, which is what Java prints too.
    digits_tuple = decimal.Decimal(repr(magnitude)).as_tuple()
    digits = "".join(map(str, digits_tuple.digits)).rstrip("0") or "0"
    exponent = int(digits_tuple.exponent) + len(digits_tuple.digits) - 1  # of the first digit
    if 1e-3 <= magnitude < 1e7:
        if exponent >= 0:
            whole = digits[: exponent + 1].ljust(exponent + 1, "0")
            fraction = digits[exponent + 1 :] or "0"
        else:
            whole = "0"
            fraction = "0" * (-exponent - 1) + digits
        return f"{sign}{whole}.{fraction}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


def _render(value: object) -> str:
    """A value as Coral echoes it inside ``Value '...'``: Java's toString of the decoded value."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, list):
        return "[" + ", ".join(_render(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={_render(item)}" for key, item in value.items()) + "}"
    return str(value)


def _entry(value: object, path: str, message: str, sensitive: bool = False) -> str:
    if value is None:
        shown = "Value null"
    elif sensitive:
        # Coral leaves sensitive members' values out of the message.
        shown = "Value"
    else:
        shown = f"Value '{_render(value)}'"
    return f"{shown} at '{path}' failed to satisfy constraint: {message}"


def _child_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _utf16_length(text: str) -> int:
    # Java's String.length() counts UTF-16 code units; the model's limits are in those units.
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


_MUST_NOT_BE_NULL = "Member must not be null"


# --------------------------------------------------------------------------------------------------
# Validator nodes, one per model shape


class _Node:
    """Validates one JSON value against one shape; subclasses per shape type."""

    sensitive: bool = False

    def check(self, value: object, path: str, errors: list[str]) -> None:
        raise NotImplementedError


class _Scalar(_Node):
    """A leaf shape: type check plus the model's constraints on the value itself."""

    # Every modelled constraint, in the order Coral prints them (also inside "[...]" lists).
    rules: tuple[str, ...] = ()

    def type_check(self, value: object) -> None:
        raise NotImplementedError

    def failures(self, value: Any) -> Iterator[str]:
        return iter(())

    def check(self, value: object, path: str, errors: list[str]) -> None:
        self.type_check(value)
        for message in self.failures(value):
            errors.append(_entry(value, path, message, self.sensitive))

    def violates(self, value: object) -> bool:
        """Whether ``value`` (type-checked here) breaks any rule, for list members and map entries."""
        if value is None:
            return True
        self.type_check(value)
        return next(self.failures(value), None) is not None


def _unexpected_start(value: object) -> SerializationException:
    if isinstance(value, list):
        return SerializationException("Start of list found where not expected")
    return SerializationException("Start of structure or map found where not expected.")


def _token(value: object) -> str:
    """Jackson's name for a JSON scalar, as AWS quotes it in type-mismatch messages."""
    if isinstance(value, bool):
        return "TRUE_VALUE" if value else "FALSE_VALUE"
    if isinstance(value, int | float):
        return "NUMBER_VALUE"
    return "STRING_VALUE"


def _not_convertible(value: object, target: str) -> SerializationException:
    if isinstance(value, list | dict):
        return _unexpected_start(value)
    return SerializationException(f"{_token(value)} can not be converted to {target}")


class _String(_Scalar):
    def __init__(self, shape: Shape) -> None:
        meta = shape.metadata
        self.min_len: int | None = meta.get("min")
        self.max_len: int | None = meta.get("max")
        self.pattern_text: str | None = meta.get("pattern")
        self.regex = compile_java_pattern(self.pattern_text) if self.pattern_text is not None else None
        enum = list(getattr(shape, "enum", None) or [])
        self.enum: frozenset[str] | None = frozenset(enum) if enum else None
        self.sensitive = bool(meta.get("sensitive"))
        rules: list[str] = []
        if self.max_len is not None:
            self.max_msg = f"Member must have length less than or equal to {self.max_len}"
            rules.append(self.max_msg)
        if self.min_len is not None:
            self.min_msg = f"Member must have length greater than or equal to {self.min_len}"
            rules.append(self.min_msg)
        if self.pattern_text is not None:
            self.pattern_msg = f"Member must satisfy regular expression pattern: {self.pattern_text}"
            rules.append(self.pattern_msg)
        if enum:
            self.enum_msg = f"Member must satisfy enum value set: [{', '.join(enum)}]"
            rules.append(self.enum_msg)
        self.rules = tuple(rules)

    def type_check(self, value: object) -> None:
        if not isinstance(value, str):
            raise _not_convertible(value, "a String")

    def failures(self, value: Any) -> Iterator[str]:
        if self.max_len is not None or self.min_len is not None:
            length = _utf16_length(value)
            if self.max_len is not None and length > self.max_len:
                yield self.max_msg
            if self.min_len is not None and length < self.min_len:
                yield self.min_msg
        if self.regex is not None and self.regex.fullmatch(value) is None:
            yield self.pattern_msg
        if self.enum is not None and value not in self.enum:
            yield self.enum_msg


class _Number(_Scalar):
    _ARTICLES = {"integer": "an Integer", "long": "a Long", "float": "a Float", "double": "a Double"}

    def __init__(self, shape: Shape) -> None:
        self.integral = shape.type_name in ("integer", "long")
        self.target = self._ARTICLES[shape.type_name]
        meta = shape.metadata
        self.minimum: float | None = meta.get("min")
        self.maximum: float | None = meta.get("max")
        self.sensitive = bool(meta.get("sensitive"))
        rules: list[str] = []
        if self.maximum is not None:
            self.max_msg = f"Member must have value less than or equal to {self._bound(self.maximum)}"
            rules.append(self.max_msg)
        if self.minimum is not None:
            self.min_msg = f"Member must have value greater than or equal to {self._bound(self.minimum)}"
            rules.append(self.min_msg)
        self.rules = tuple(rules)

    def _bound(self, bound: float) -> str:
        return str(int(bound)) if self.integral else _java_double(float(bound))

    def type_check(self, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _not_convertible(value, self.target)
        if self.integral and isinstance(value, float) and not value.is_integer():
            # AWS truncates 1.5 to 1; we refuse it rather than hand a handler a float it did not
            # expect (the body is validated, not rewritten).
            raise SerializationException(f"NUMBER_VALUE can not be converted to {self.target}")

    def failures(self, value: Any) -> Iterator[str]:
        if self.maximum is not None and value > self.maximum:
            yield self.max_msg
        if self.minimum is not None and value < self.minimum:
            yield self.min_msg


class _Boolean(_Scalar):
    def type_check(self, value: object) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, str):
            # Wording (including "an Boolean") as AWS answers it.
            raise SerializationException("STRING_VALUE can not be converted to an Boolean")
        raise _not_convertible(value, "a Boolean")


class _Timestamp(_Scalar):
    def type_check(self, value: object) -> None:
        if isinstance(value, bool | list | dict):
            raise _not_convertible(value, "a Timestamp")
        if isinstance(value, int | float):
            return
        if isinstance(value, str) and _parses_as_timestamp(value):
            return
        raise _not_convertible(value, "a Timestamp")


def _parses_as_timestamp(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        pass
    try:
        datetime.datetime.fromisoformat(text)
        return True
    except ValueError:
        return False


_BASE64_ALPHABET = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class _Blob(_Scalar):
    def __init__(self, shape: Shape) -> None:
        meta = shape.metadata
        self.min_len: int | None = meta.get("min")
        self.max_len: int | None = meta.get("max")
        self.sensitive = bool(meta.get("sensitive"))
        rules: list[str] = []
        if self.max_len is not None:
            rules.append(f"Member must have length less than or equal to {self.max_len}")
        if self.min_len is not None:
            rules.append(f"Member must have length greater than or equal to {self.min_len}")
        self.rules = tuple(rules)

    def type_check(self, value: object) -> None:
        if not isinstance(value, str):
            raise _not_convertible(value, "a Blob")
        if len(value) % 4:
            raise SerializationException(
                f"'{value}' can not be converted to a Blob: Base64 encoded length is expected a "
                f"multiple of 4 bytes but found: {len(value)}"
            )
        if _BASE64_ALPHABET.fullmatch(value) is None:
            raise SerializationException(f"'{value}' can not be converted to a Blob: Invalid Base64 encoding")

    def failures(self, value: Any) -> Iterator[str]:
        if not self.rules:
            return
        try:
            size = len(binascii.a2b_base64(value))
        except binascii.Error:  # pragma: no cover - the alphabet check above rules this out
            size = 0
        if self.max_len is not None and size > self.max_len:
            yield self.rules[0]
        if self.min_len is not None and size < self.min_len:
            yield self.rules[-1]


class _Document(_Node):
    """A free-form JSON document member: anything goes."""

    def check(self, value: object, path: str, errors: list[str]) -> None:
        return None


def _length_rules(shape: Shape) -> tuple[int | None, int | None, list[str]]:
    minimum: int | None = shape.metadata.get("min")
    maximum: int | None = shape.metadata.get("max")
    rules = []
    if maximum is not None:
        rules.append(f"Member must have length less than or equal to {maximum}")
    if minimum is not None:
        rules.append(f"Member must have length greater than or equal to {minimum}")
    return minimum, maximum, rules


def _length_failures(size: int, minimum: int | None, maximum: int | None, rules: list[str]) -> list[str]:
    failed = []
    if maximum is not None and size > maximum:
        failed.append(rules[0])
    if minimum is not None and size < minimum:
        failed.append(rules[-1])
    return failed


def _bracket(rules: tuple[str, ...]) -> str:
    return "[" + ", ".join(rules or (_MUST_NOT_BE_NULL,)) + "]"


class _List(_Node):
    def __init__(self, shape: ListShape) -> None:
        self.minimum, self.maximum, self.own_rules = _length_rules(shape)
        self.member: _Node = _Document()  # set by _build once the member's node exists

    def check(self, value: object, path: str, errors: list[str]) -> None:
        if not isinstance(value, list):
            if isinstance(value, dict):
                raise _unexpected_start(value)
            raise SerializationException("Expected list or null")
        for message in _length_failures(len(value), self.minimum, self.maximum, self.own_rules):
            errors.append(_entry(value, path, message))
        member = self.member
        if isinstance(member, _Scalar):
            # Coral reports a list of scalars once, at the list, quoting the member's whole rule set.
            bad = False
            for item in value:
                if member.violates(item):
                    bad = True
            if bad:
                message = f"Member must satisfy constraint: {_bracket(member.rules)}"
                errors.append(_entry(value, path, message, member.sensitive))
            return
        for index, item in enumerate(value, start=1):
            item_path = f"{path}.{index}.member"
            if item is None:
                errors.append(_entry(None, item_path, _MUST_NOT_BE_NULL))
            else:
                member.check(item, item_path, errors)


class _Map(_Node):
    def __init__(self, shape: MapShape) -> None:
        self.minimum, self.maximum, self.own_rules = _length_rules(shape)
        self.key: _Node = _Document()
        self.value: _Node = _Document()

    def check(self, value: object, path: str, errors: list[str]) -> None:
        if not isinstance(value, dict):
            if isinstance(value, list):
                raise _unexpected_start(value)
            raise SerializationException("Expected map or null")
        for message in _length_failures(len(value), self.minimum, self.maximum, self.own_rules):
            errors.append(_entry(value, path, message))
        # Coral reports keys once and values once per map (keys first), quoting the whole rule set.
        key = self.key
        if isinstance(key, _Scalar) and key.rules and any(key.violates(name) for name in value):
            errors.append(_entry(value, path, f"Map keys must satisfy constraint: {_bracket(key.rules)}"))
        member = self.value
        if isinstance(member, _Scalar):
            bad = False
            for item in value.values():
                if member.violates(item):
                    bad = True
            if bad:
                message = f"Map value must satisfy constraint: {_bracket(member.rules)}"
                errors.append(_entry(value, path, message, member.sensitive))
            return
        for name, item in value.items():
            item_path = f"{path}.{name}.member"
            if item is None:
                errors.append(_entry(None, item_path, _MUST_NOT_BE_NULL))
            else:
                member.check(item, item_path, errors)


@dataclasses.dataclass(slots=True)
class _Member:
    name: str  # as on the wire (PascalCase)
    path_name: str  # as in Coral's messages
    required: bool
    node: _Node


class _Structure(_Node):
    def __init__(self) -> None:
        self.members: tuple[_Member, ...] = ()  # set by _build once the members' nodes exist

    def check(self, value: object, path: str, errors: list[str]) -> None:
        if not isinstance(value, dict):
            if isinstance(value, list):
                raise _unexpected_start(value)
            # What AWS's deserializer answers for a scalar where a structure belongs.
            raise SerializationException("Expected null")
        for member in self.members:
            item = value.get(member.name)
            if item is None:
                # JSON null and absence are the same thing to Coral.
                if member.required:
                    errors.append(_entry(None, _child_path(path, member.path_name), _MUST_NOT_BE_NULL))
                continue
            member.node.check(item, _child_path(path, member.path_name), errors)


# --------------------------------------------------------------------------------------------------
# Compiling shapes into nodes (cached per model)

# Keyed by botocore's shape resolver, i.e. one cache per loaded service model; shape names are
# unique within a model but not across models ("Tag" is everywhere).
_NODE_CACHE: weakref.WeakKeyDictionary[object, dict[str, _Node]] = weakref.WeakKeyDictionary()


def _node_cache_for(shape: Shape) -> dict[str, _Node]:
    # botocore keeps the resolver private; it is the one object every shape of a model shares.
    resolver = getattr(shape, "_shape_resolver", None)
    if resolver is None:  # pragma: no cover - every botocore-built shape has one
        return {}
    cache = _NODE_CACHE.get(resolver)
    if cache is None:
        cache = {}
        _NODE_CACHE[resolver] = cache
    return cache


_BUILD_LOCK = threading.Lock()


def _node_for(shape: Shape) -> _Node:
    cache = _node_cache_for(shape)
    node = cache.get(shape.name)
    if node is None:
        with _BUILD_LOCK:
            node = cache.get(shape.name)
            if node is None:
                pending: dict[str, _Node] = {}
                node = _build(shape, collections.ChainMap(pending, cache))
                # Published only when complete: lock-free readers never see a half-built node.
                cache.update(pending)
    return node


def _build(shape: Shape, cache: MutableMapping[str, _Node]) -> _Node:
    # A node is registered before its children are built, so recursive shapes terminate.
    node: _Node
    kind = shape.type_name
    if kind == "structure" and shape.metadata.get("document"):
        node = _Document()
        cache[shape.name] = node
    elif kind == "structure":
        assert isinstance(shape, StructureShape)
        structure = _Structure()
        cache[shape.name] = structure
        required = set(shape.required_members)
        structure.members = tuple(
            _Member(name, lower_first(name), name in required, _child(member, cache))
            for name, member in shape.members.items()
        )
        node = structure
    elif kind == "list":
        assert isinstance(shape, ListShape)
        sequence = _List(shape)
        cache[shape.name] = sequence
        sequence.member = _child(shape.member, cache)
        node = sequence
    elif kind == "map":
        assert isinstance(shape, MapShape)
        mapping = _Map(shape)
        cache[shape.name] = mapping
        mapping.key = _child(shape.key, cache)
        mapping.value = _child(shape.value, cache)
        node = mapping
    else:
        node = _scalar(shape)
        cache[shape.name] = node
    return node


def _child(shape: Shape, cache: MutableMapping[str, _Node]) -> _Node:
    node = cache.get(shape.name)
    return node if node is not None else _build(shape, cache)


def _scalar(shape: Shape) -> _Node:
    kind = shape.type_name
    if kind == "string":
        return _String(shape)
    if kind in ("integer", "long", "float", "double"):
        return _Number(shape)
    if kind == "boolean":
        return _Boolean()
    if kind == "timestamp":
        return _Timestamp()
    if kind == "blob":
        return _Blob(shape)
    # Unknown future types: accept rather than refuse requests the model says are valid.
    return _Document()
