"""Validating raw transaction records (JSON objects or CSV rows) with the index and reason of
every bad record, for ``POST /v1/ml/data`` and the ``data.records`` consumer."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime
from typing import Any

RESERVED = {"timestamp", "label", "record_id"}


def parse_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        ts = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str) and value.strip():
        try:
            ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"timestamp {value!r} is not ISO 8601 (e.g. 2025-10-01T12:00:00Z)") from None
    else:
        raise ValueError("timestamp is required (ISO 8601 or epoch seconds)")
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _number(name: str, value: Any) -> float | int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"feature {name!r} is not a finite number")
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            return int(text == "true")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"feature {name!r} is not numeric: {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"feature {name!r} is not a finite number")
        return int(number) if number.is_integer() and "." not in text else number
    raise ValueError(f"feature {name!r} must be a number or boolean, got {type(value).__name__}")


def validate_record(raw: Any) -> dict[str, Any]:
    """``{timestamp, features{name: number|bool}, label?: 0|1}`` -> normalised record; raises ValueError."""
    if not isinstance(raw, dict):
        raise ValueError("a record must be an object")
    unknown = set(raw) - RESERVED - {"features"}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}; put model inputs under 'features'")
    features = raw.get("features")
    if not isinstance(features, dict) or not features:
        raise ValueError("features must be a non-empty object")
    label = raw.get("label")
    if label is not None and label not in (0, 1) or isinstance(label, bool):
        raise ValueError(f"label must be 0, 1 or null, got {label!r}")
    return {
        "timestamp": parse_timestamp(raw.get("timestamp")),
        "features": {str(k): _number(str(k), v) for k, v in features.items()},
        "label": label,
    }


def validate_records(rows: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(valid records, errors [{index, reason}])."""
    good: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(rows):
        try:
            good.append(validate_record(raw))
        except (ValueError, TypeError) as exc:
            errors.append({"index": index, "reason": str(exc)})
    return good, errors


def csv_rows(text: str) -> list[dict[str, Any]]:
    """CSV with a ``timestamp`` column, an optional ``label`` column, every other column a feature.
    Empty label cells mean unlabelled."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "timestamp" not in reader.fieldnames:
        raise ValueError("the CSV needs a header row with a 'timestamp' column")
    rows: list[dict[str, Any]] = []
    for row in reader:
        label_text = (row.get("label") or "").strip()
        label: Any = None
        if label_text:
            label = int(label_text) if label_text in ("0", "1") else label_text
        rows.append(
            {
                "timestamp": row.get("timestamp"),
                "label": label,
                "features": {k: v for k, v in row.items() if k not in RESERVED and k is not None},
            }
        )
    return rows
