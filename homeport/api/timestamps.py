"""Timestamps on the wire: epoch seconds out; epoch numbers or ISO-8601 strings in."""

from __future__ import annotations

from datetime import UTC, datetime

from homeport.errors import ValidationException


def parse_timestamp(value: object, member: str) -> float:
    if isinstance(value, bool):
        raise ValidationException(f"Invalid timestamp for {member}: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationException(f"Invalid timestamp for {member}: {value!r}") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise ValidationException(f"Invalid timestamp for {member}: {value!r}")
