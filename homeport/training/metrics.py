"""MetricDefinitions: regexes applied to each log line; the last match per metric is final."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from homeport.builtins.catalog import default_metric_definitions


@dataclass
class MetricCollector:
    definitions: list[tuple[str, re.Pattern[str]]]
    latest: dict[str, tuple[float, float]] = field(default_factory=dict)  # name → (value, timestamp)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> MetricCollector:
        """The job's MetricDefinitions, or its built-in algorithm's when it brings none."""
        defs = default_metric_definitions(spec)
        return cls([(str(d["Name"]), re.compile(str(d["Regex"]))) for d in defs])

    def feed(self, line: str, timestamp: float | None = None) -> None:
        for name, pattern in self.definitions:
            match = pattern.search(line)
            if match is None:
                continue
            text = match.group(1) if match.groups() else match.group(0)
            try:
                value = float(text)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(value):
                continue  # JSON (and the metadata store) cannot hold NaN or Infinity
            self.latest[name] = (value, time.time() if timestamp is None else timestamp)

    def final(self) -> list[dict[str, Any]]:
        return [
            {"MetricName": name, "Value": value, "Timestamp": ts}
            for name, (value, ts) in sorted(self.latest.items())
        ]


def compile_error(spec: dict[str, Any]) -> str | None:
    """A message naming the first MetricDefinitions regex Python cannot compile, or None."""
    for i, d in enumerate(spec.get("AlgorithmSpecification", {}).get("MetricDefinitions", []), start=1):
        try:
            re.compile(str(d.get("Regex", "")))
        except re.error as exc:
            return f"MetricDefinitions[{i}] ({d.get('Name')}): invalid Regex {d.get('Regex')!r}: {exc}"
    return None
