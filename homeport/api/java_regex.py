"""Java regular expressions (as botocore's service models write them) translated to Python.

Handles ``\\p{L}``-style Unicode categories, Java's ASCII-only POSIX classes, surrogate pairs in
classes, Java's ``.`` (which stops at every line terminator), ``\\Q...\\E`` and friends. What
Python cannot express returns None and is reported by :func:`pattern_report`, never guessed.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import sys
import unicodedata
import warnings
from collections.abc import Iterator

from botocore.model import ListShape, MapShape, ServiceModel, Shape, StructureShape

# Java's "." stops at every line terminator, Python's only at "\n".
_JAVA_DOT = "[^\\n\\r\\u0085\\u2028\\u2029]"
_JAVA_LINE_END = "(?:\\r\\n|[\\n\\x0b\\f\\r\\u0085\\u2028\\u2029])"

# POSIX classes: ASCII-only in Java unless UNICODE_CHARACTER_CLASS is set, which the model never does.
_POSIX_CLASSES = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": "\\x00-\\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": "!-/:-@\\[-`{-~",
    "Graph": "!-~",
    "Print": " -~",
    "Blank": " \\t",
    "Cntrl": "\\x00-\\x1f\\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0b\\f\\r",
}

# Java's \h and \v (horizontal / vertical whitespace), as class bodies.
_HORIZONTAL_SPACE = " \\t\\xa0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000"
_VERTICAL_SPACE = "\\n\\x0b\\f\\r\\x85\\u2028\\u2029"

_QUANTIFIER_AFTER = re.compile(r"\{\d+(?:,\d*)?\}")


def _code_point_escape(code_point: int) -> str:
    return f"\\u{code_point:04x}" if code_point <= 0xFFFF else f"\\U{code_point:08x}"


@functools.cache
def _general_categories() -> dict[str, str]:
    """Class bodies (``\\uXXXX-\\uYYYY...``) for every Unicode general category, 1 and 2 letters."""
    # Built once, on the first pattern that needs it (a few tenths of a second): runs of equal
    # categories are found first, so the per-code-point work stays a list comprehension.
    categories = [unicodedata.category(chr(code_point)) for code_point in range(sys.maxunicode + 1)]
    ranges: dict[str, list[list[int]]] = {}
    start = 0
    for code_point, (previous, current) in enumerate(itertools.pairwise(categories), start=1):
        if previous == current:
            continue
        _add_span(ranges, previous, start, code_point - 1)
        start = code_point
    _add_span(ranges, categories[-1], start, len(categories) - 1)
    bodies = {}
    for key, spans in ranges.items():
        bodies[key] = "".join(
            _code_point_escape(low)
            if low == high
            else f"{_code_point_escape(low)}-{_code_point_escape(high)}"
            for low, high in spans
        )
    bodies["LC"] = bodies.get("Lu", "") + bodies.get("Ll", "") + bodies.get("Lt", "")
    return bodies


def _add_span(ranges: dict[str, list[list[int]]], category: str, low: int, high: int) -> None:
    for key in (category, category[0]):
        spans = ranges.setdefault(key, [])
        if spans and spans[-1][1] == low - 1:
            spans[-1][1] = high
        else:
            spans.append([low, high])


def _property_body(name: str) -> str | None:
    """The class body for Java's ``\\p{name}``, or None when Python has no equivalent we build."""
    if name in _POSIX_CLASSES:
        return _POSIX_CLASSES[name]
    category = name[2:] if name.startswith("Is") and len(name) in (3, 4) else name
    if category == "L&":
        category = "LC"
    if len(category) in (1, 2) and category[:1].isupper():
        return _general_categories().get(category)
    return None  # scripts, blocks, java* methods, binary properties


class _Untranslatable(Exception):
    """A Java construct the translator does not map to Python."""


def translate_java_regex(pattern: str) -> str | None:
    """``pattern`` (java.util.regex syntax) as an equivalent Python ``re`` pattern, or None.

    The result is meant for ``re.compile(..., re.ASCII)``: Java's ``\\w \\d \\s \\b`` are ASCII-only.
    """
    try:
        return "".join(_translate(pattern))
    except _Untranslatable:
        return None


def _translate(pattern: str) -> Iterator[str]:
    size = len(pattern)
    index = 0
    in_class = False
    while index < size:
        char = pattern[index]
        if char == "\\":
            text, index = _translate_escape(pattern, index, in_class)
            yield text
            continue
        if in_class:
            if char == "]":
                in_class = False
                yield char
            elif char == "[":
                raise _Untranslatable("nested character class (Java union)")
            elif char == "&" and pattern.startswith("&&", index):
                raise _Untranslatable("character class intersection")
            elif char in "&~|":
                # Doubled, these mean set operations to Python (FutureWarning today); escaped they
                # are the literals Java means.
                yield "\\" + char
            else:
                yield char
            index += 1
            continue
        if char == "[":
            in_class = True
            yield char
            index += 1
            if pattern.startswith("^", index):
                yield "^"
                index += 1
            if pattern.startswith("]", index):
                # Java treats a leading "]" as a literal, as Python does; keep it escaped for clarity.
                yield "\\]"
                index += 1
            continue
        if char == ".":
            yield _JAVA_DOT
        elif (
            char == "("
            and pattern.startswith("(?<", index)
            and pattern[index + 3 : index + 4] not in ("=", "!")
        ):
            yield "(?P<"
            index += 3
            continue
        elif char == "$":
            yield char
            quantifier = _QUANTIFIER_AFTER.match(pattern, index + 1)
            if quantifier is not None:
                # Java accepts a quantified anchor ("...$" + "{1,128}"); repeating an anchor
                # changes nothing, Python refuses it.
                index = quantifier.end()
                continue
        else:
            yield char
        index += 1
    if in_class:
        raise _Untranslatable("unclosed character class")


def _translate_escape(pattern: str, index: int, in_class: bool) -> tuple[str, int]:
    """One backslash escape starting at ``index``: (python text, index after it)."""
    if index + 1 >= len(pattern):
        raise _Untranslatable("trailing backslash")
    letter = pattern[index + 1]
    after = index + 2
    if letter in "pP":
        if pattern.startswith("{", after):
            close = pattern.find("}", after)
            if close < 0:
                raise _Untranslatable("unclosed \\p{")
            name, after = pattern[after + 1 : close], close + 1
        else:
            name, after = pattern[after : after + 1], after + 1
        body = _property_body(name)
        if body is None:
            raise _Untranslatable(f"\\p{{{name}}}")
        if in_class:
            if letter == "P":
                raise _Untranslatable("negated property inside a class")
            return body, after
        return ("[^" if letter == "P" else "[") + body + "]", after
    if letter == "u":
        code_point = _hex(pattern[after : after + 4])
        after += 4
        if 0xD800 <= code_point <= 0xDBFF and pattern.startswith("\\u", after):
            low = _hex(pattern[after + 2 : after + 6])
            if 0xDC00 <= low <= 0xDFFF:
                # Java matches UTF-16, so a surrogate pair names one supplementary code point.
                code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00)
                after += 6
        return _code_point_escape(code_point), after
    if letter == "x" and pattern.startswith("{", after):
        close = pattern.find("}", after)
        if close < 0:
            raise _Untranslatable("unclosed \\x{")
        return _code_point_escape(_hex(pattern[after + 1 : close])), close + 1
    if letter == "Q":
        end = pattern.find("\\E", after)
        literal = pattern[after:] if end < 0 else pattern[after:end]
        escaped = (
            "".join("\\" + c if not c.isalnum() else c for c in literal) if in_class else re.escape(literal)
        )
        return escaped, len(pattern) if end < 0 else end + 2
    if letter == "e":
        return "\\x1b", after
    if letter == "c":
        if after >= len(pattern):
            raise _Untranslatable("\\c without a letter")
        return _code_point_escape(ord(pattern[after]) ^ 64), after + 1
    if letter == "0":
        digits = re.match(r"[0-7]{1,3}", pattern[after:])
        if digits is None:
            raise _Untranslatable("\\0 without octal digits")
        return _code_point_escape(int(digits.group(), 8)), after + len(digits.group())
    if letter == "h":
        return (_HORIZONTAL_SPACE if in_class else f"[{_HORIZONTAL_SPACE}]"), after
    if letter == "v":
        return (_VERTICAL_SPACE if in_class else f"[{_VERTICAL_SPACE}]"), after
    if in_class and letter in "HVR":
        raise _Untranslatable(f"\\{letter} inside a class")
    if letter == "H":
        return f"[^{_HORIZONTAL_SPACE}]", after
    if letter == "V":
        return f"[^{_VERTICAL_SPACE}]", after
    if letter == "R":
        return _JAVA_LINE_END, after
    if letter == "z" and not in_class:
        return "\\Z", after
    if letter == "Z" and not in_class:
        return f"(?={_JAVA_LINE_END}?\\Z)", after
    if letter == "k" and pattern.startswith("<", after):
        close = pattern.find(">", after)
        if close < 0:
            raise _Untranslatable("unclosed \\k<")
        return f"(?P={pattern[after + 1 : close]})", close + 1
    if letter in "GX":
        raise _Untranslatable(f"\\{letter}")
    # Everything else (\d \w \s \S \b \t \n \1, escaped punctuation) means the same to Python.
    return "\\" + letter, after


def _hex(digits: str) -> int:
    try:
        return int(digits, 16)
    except ValueError:
        raise _Untranslatable(f"bad hex escape {digits!r}") from None


@functools.cache
def compile_java_pattern(pattern: str) -> re.Pattern[str] | None:
    """The model's ``pattern`` compiled for ``fullmatch`` (Java's ``matches``), or None if untranslatable."""
    translated = translate_java_regex(pattern)
    if translated is None:
        return None
    with warnings.catch_warnings():
        # A FutureWarning means Python would read the set differently some day: not translated.
        warnings.simplefilter("error")
        try:
            return re.compile(translated, re.ASCII)
        except (re.error, FutureWarning, DeprecationWarning):
            return None


@dataclasses.dataclass(frozen=True)
class PatternReport:
    """How many of a model's distinct patterns Homeport enforces."""

    total: int
    compiled: int
    untranslatable: tuple[str, ...]


def pattern_report(model: ServiceModel) -> PatternReport:
    """Compile every distinct pattern reachable from ``model``'s operation inputs."""
    patterns: set[str] = set()
    seen: set[str] = set()
    for name in model.operation_names:
        shape = model.operation_model(name).input_shape
        if shape is not None:
            _collect_patterns(shape, seen, patterns)
    untranslatable = tuple(sorted(p for p in patterns if compile_java_pattern(p) is None))
    return PatternReport(len(patterns), len(patterns) - len(untranslatable), untranslatable)


def _collect_patterns(shape: Shape, seen: set[str], patterns: set[str]) -> None:
    if shape.name in seen:
        return
    seen.add(shape.name)
    pattern = shape.metadata.get("pattern")
    if pattern is not None:
        patterns.add(pattern)
    if isinstance(shape, StructureShape):
        for member in shape.members.values():
            _collect_patterns(member, seen, patterns)
    elif isinstance(shape, ListShape):
        _collect_patterns(shape.member, seen, patterns)
    elif isinstance(shape, MapShape):
        _collect_patterns(shape.key, seen, patterns)
        _collect_patterns(shape.value, seen, patterns)
