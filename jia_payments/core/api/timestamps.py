"""Timestamps as the API renders them (API.md "Conventions"): ISO 8601 in UTC, "Z", microseconds
kept, exactly as DRF's DateTimeField writes them; events carry the same text."""

from datetime import UTC, datetime


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"
