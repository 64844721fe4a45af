"""The rows of a file to score (CSV with a header line, or JSON lines), each with its row number and optional id;
read without the model libraries, so the API validates an upload before it accepts the job."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

ID_FIELDS = ("record_id", "id")
"""a file row's identity, copied to its score (never a feature)"""
IGNORED_FIELDS = ("timestamp", "label")
"""columns a scoring file may carry that are not model inputs"""


@dataclass(frozen=True)
class FileRow:
    row: int
    """1-based position in the file (header not counted)"""
    record_id: str | None
    features: dict[str, float]


def read_rows(data: bytes, fmt: str) -> Iterator[FileRow]:
    """The rows of a scoring file, ``fmt`` ``csv`` (header line; empty cell = missing) or ``jsonl`` (one object
    per line, features at the top level or under ``features``). Raises ValueError naming the first bad row."""
    text = data.decode("utf-8-sig")
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise ValueError("the CSV file has no header line")
        for n, raw in enumerate(reader, start=1):
            yield _row(n, raw)
        return
    n = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        n += 1
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"row {n}: not a JSON object ({exc.msg})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"row {n}: not a JSON object")
        if isinstance(raw.get("features"), dict):
            raw = {**{k: v for k, v in raw.items() if k in ID_FIELDS}, **raw["features"]}
        yield _row(n, raw)


def _row(n: int, raw: Mapping[str, Any]) -> FileRow:
    record_id = next((str(raw[k]) for k in ID_FIELDS if raw.get(k) not in (None, "")), None)
    features: dict[str, float] = {}
    for name, value in raw.items():
        if name in ID_FIELDS or name in IGNORED_FIELDS or name is None or value is None or value == "":
            continue
        if isinstance(value, bool):
            features[name] = float(value)
            continue
        text = value.strip().lower() if isinstance(value, str) else None
        try:
            number = float(text == "true") if text in ("true", "false") else float(value)
        except (TypeError, ValueError, AttributeError):
            raise ValueError(f"row {n}: feature {name!r} is not numeric: {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"row {n}: feature {name!r} is not a finite number")
        features[name] = number
    if not features:
        raise ValueError(f"row {n}: no feature values")
    return FileRow(n, record_id, features)
