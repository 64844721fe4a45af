"""Lotto 6/45 draws: the validated record, machine (호기) parsing, JSON/CSV import, synthetic history.

A draw is six distinct numbers from 1..45 plus a bonus number, drawn by one of three machines
(1호기, 2호기, 3호기). The official data (동행복권 ``drwNo``, ``drwNoDate``, ``drwtNo1..6``, ``bnusNo``)
does not carry the machine: it is imported alongside, in a ``machine`` or ``machine_type`` column.

The importers never raise on bad rows: they return ``(draws, errors)`` where every error names the row,
the field and the reason, so a caller can accept the good rows and show the bad ones.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NUMBER_MIN: Final = 1
NUMBER_MAX: Final = 45
NUMBERS_PER_DRAW: Final = 6
HIGH_MIN: Final = 23
"""Numbers 23..45 are "high" (고), 1..22 "low" (저)."""
TOTAL_COMBINATIONS: Final = 8_145_060
"""C(45, 6): every combination has the same 1 / 8,145,060 chance of matching all six numbers."""

MACHINES: Final[tuple[int, ...]] = (1, 2, 3)
MACHINE_SUFFIX: Final = "호기"
VALID_MACHINE_LABELS: Final[tuple[str, ...]] = tuple(f"{m}{MACHINE_SUFFIX}" for m in MACHINES)

Machine = Literal[1, 2, 3]


class InvalidMachineType(ValueError):
    """A machine (호기) value that is not 1호기, 2호기 or 3호기 (nor 1, 2, 3).

    The message is the seed's (``올바른 호기를 선택하세요. 가능한 값: 1호기, 2호기, 3호기``); ``code``,
    ``field`` and the rejected ``value`` let the API layer answer with the standard error body.
    """

    code: Final = "INVALID_MACHINE_TYPE"
    field: Final = "machine_type"
    valid_values: Final = VALID_MACHINE_LABELS

    def __init__(self, value: object) -> None:
        self.value = value
        super().__init__(f"올바른 호기를 선택하세요. 가능한 값: {', '.join(VALID_MACHINE_LABELS)}")


_MACHINE_RE = re.compile(r"^\s*([0-9]+)\s*(?:호기|호)?\s*$")


def parse_machine(value: str | int) -> int:
    """Parse a machine (호기) given as ``"1호기"``, ``"1"``, ``1`` or URL-encoded ``"1%ED%98%B8%EA%B8%B0"``.

    Returns 1, 2 or 3; anything else raises :class:`InvalidMachineType` listing the valid values.
    """
    if isinstance(value, bool):
        raise InvalidMachineType(value)
    if isinstance(value, int):
        if value in MACHINES:
            return value
        raise InvalidMachineType(value)
    if isinstance(value, str):
        text = urllib.parse.unquote(value) if "%" in value else value
        match = _MACHINE_RE.match(text)
        if match is not None:
            number = int(match.group(1))
            if number in MACHINES:
                return number
    raise InvalidMachineType(value)


def machine_label(machine: str | int) -> str:
    """``1 -> "1호기"`` (any form :func:`parse_machine` accepts)."""
    return f"{parse_machine(machine)}{MACHINE_SUFFIX}"


class Draw(BaseModel):
    """One official draw: round, date, six sorted distinct numbers 1..45, a bonus not among them, machine 1|2|3.

    ``numbers`` may be given in any order and are stored sorted. ``machine`` accepts every form of
    :func:`parse_machine` and is stored as the integer. ``synthetic`` is True only for draws made by
    :func:`synthetic_history` (never for imported data).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    round: int = Field(ge=1, description="회차 (drwNo)")
    date: dt.date = Field(description="추첨일 (drwNoDate)")
    numbers: tuple[int, ...] = Field(description="당첨번호 6개, 오름차순")
    bonus: int = Field(ge=NUMBER_MIN, le=NUMBER_MAX, description="보너스 번호")
    machine: Machine = Field(description="추첨기 호기 1|2|3")
    synthetic: bool = Field(default=False, description="True only for generated (fake) history")

    @field_validator("numbers", mode="after")
    @classmethod
    def _check_numbers(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        problem = numbers_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return tuple(sorted(value))

    @field_validator("machine", mode="before")
    @classmethod
    def _parse_machine(cls, value: Any) -> int:
        return parse_machine(value)

    @model_validator(mode="after")
    def _check_bonus(self) -> Self:
        if self.bonus in self.numbers:
            raise ValueError(f"bonus {self.bonus} is among the numbers {list(self.numbers)}")
        return self

    @property
    def machine_type(self) -> str:
        """The machine as the API label, e.g. ``"1호기"``."""
        return machine_label(self.machine)


def numbers_problem(numbers: Sequence[int]) -> str | None:
    """Why ``numbers`` is not a valid set of six (count, range, repeats), or None when it is."""
    if len(numbers) != NUMBERS_PER_DRAW:
        return f"expected {NUMBERS_PER_DRAW} numbers, got {len(numbers)}"
    out_of_range = [n for n in numbers if not NUMBER_MIN <= n <= NUMBER_MAX]
    if out_of_range:
        return f"numbers out of range {NUMBER_MIN}-{NUMBER_MAX}: {out_of_range}"
    repeated = sorted({n for n in numbers if list(numbers).count(n) > 1})
    if repeated:
        return f"repeated numbers: {repeated}"
    return None


class DrawImportError(BaseModel):
    """One problem found while importing: which record (0-based ``row``), which field, why.

    For CSV, ``line`` is the 1-based physical line in the text (the header is line 1).
    """

    model_config = ConfigDict(frozen=True)

    row: int
    field: str
    reason: str
    value: Any = None
    line: int | None = None


# ---------------------------------------------------------------------------------------------------------------
# field names

_ROUND_KEYS: Final = ("round", "drwNo")
_DATE_KEYS: Final = ("date", "drwNoDate")
_BONUS_KEYS: Final = ("bonus", "bnusNo")
_MACHINE_KEYS: Final = ("machine", "machine_type")
_NUMBER_COLUMNS: Final = (
    tuple(f"n{i}" for i in range(1, 7)),
    tuple(f"drwtNo{i}" for i in range(1, 7)),
)
_SPLIT_RE = re.compile(r"[\s,;|\[\]()]+")
_DATE_RE = re.compile(r"^\s*(\d{4})[-./](\d{1,2})[-./](\d{1,2})")


def _first_present(record: Mapping[str, Any], keys: Iterable[str]) -> tuple[str, Any] | None:
    for key in keys:
        if key in record and record[key] is not None and record[key] != "":
            return key, record[key]
    return None


def _as_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError("not an integer")
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        if re.fullmatch(r"[+-]?\d+\.0*", text):
            return int(float(text))
    raise ValueError("not an integer")


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        match = _DATE_RE.match(value)
        if match is not None:
            year, month, day = (int(g) for g in match.groups())
            return dt.date(year, month, day)  # raises ValueError for e.g. 2025-02-30
    raise ValueError("expected a date like 2025-08-23 (also 2025.08.23 or 2025/08/23)")


def _numbers_from(record: Mapping[str, Any]) -> tuple[str, list[Any]] | None:
    found = _first_present(record, ("numbers",))
    if found is not None:
        key, raw = found
        if isinstance(raw, str):
            return key, [t for t in _SPLIT_RE.split(raw) if t]
        if isinstance(raw, Sequence):
            return key, list(raw)
        return key, [raw]
    for columns in _NUMBER_COLUMNS:
        if any(c in record for c in columns):
            return ",".join(columns), [record.get(c) for c in columns]
    return None


def _add_error(
    sink: list[DrawImportError], row: int, line: int | None, field: str, reason: str, value: Any = None
) -> None:
    sink.append(DrawImportError(row=row, field=field, reason=reason, value=value, line=line))


def _parse_records(
    records: Sequence[Any],
    *,
    default_machine: int | None,
    lines: Sequence[int] | None = None,
) -> tuple[list[Draw], list[DrawImportError]]:
    draws: list[Draw] = []
    errors: list[DrawImportError] = []
    first_row_of_round: dict[int, int] = {}

    for row, record in enumerate(records):
        line = lines[row] if lines is not None else None
        row_errors: list[DrawImportError] = []

        fail = functools.partial(_add_error, row_errors, row, line)

        if not isinstance(record, Mapping):
            fail("*", "record is not an object", record)
            errors.extend(row_errors)
            continue
        if record.get("returnValue") == "fail":
            fail("returnValue", "the official API answered returnValue=fail (no such round)", "fail")
            errors.extend(row_errors)
            continue

        round_no: int | None = None
        found = _first_present(record, _ROUND_KEYS)
        if found is None:
            fail("round", "missing (round or drwNo)")
        else:
            try:
                round_no = _as_int(found[1])
                if round_no < 1:
                    raise ValueError("must be >= 1")
            except ValueError as exc:
                fail(found[0], str(exc), found[1])
                round_no = None
            else:
                if round_no in first_row_of_round:
                    fail(found[0], f"duplicate round {round_no} within the batch (first at row "
                         f"{first_row_of_round[round_no]})", found[1])
                else:
                    first_row_of_round[round_no] = row

        date: dt.date | None = None
        found = _first_present(record, _DATE_KEYS)
        if found is None:
            fail("date", "missing (date or drwNoDate)")
        else:
            try:
                date = _as_date(found[1])
            except ValueError as exc:
                fail(found[0], f"bad date: {exc}", found[1])

        numbers: list[int] | None = None
        found_numbers = _numbers_from(record)
        if found_numbers is None:
            fail("numbers", "missing (numbers, n1..n6 or drwtNo1..drwtNo6)")
        else:
            field, raw_numbers = found_numbers
            try:
                numbers = [_as_int(v) for v in raw_numbers]
            except ValueError:
                fail(field, "numbers must be integers", raw_numbers)
            else:
                problem = numbers_problem(numbers)
                if problem is not None:
                    fail(field, problem, raw_numbers)
                    numbers = None

        bonus: int | None = None
        found = _first_present(record, _BONUS_KEYS)
        if found is None:
            fail("bonus", "missing (bonus or bnusNo)")
        else:
            try:
                bonus = _as_int(found[1])
            except ValueError as exc:
                fail(found[0], str(exc), found[1])
            else:
                if not NUMBER_MIN <= bonus <= NUMBER_MAX:
                    fail(found[0], f"bonus out of range {NUMBER_MIN}-{NUMBER_MAX}", found[1])
                    bonus = None
                elif numbers is not None and bonus in numbers:
                    fail(found[0], f"bonus {bonus} is among the numbers {sorted(numbers)}", found[1])
                    bonus = None

        machine: int | None = None
        found = _first_present(record, _MACHINE_KEYS)
        if found is None:
            if default_machine is None:
                fail("machine", f"missing (machine or machine_type: {', '.join(VALID_MACHINE_LABELS)})")
            else:
                machine = parse_machine(default_machine)
        else:
            try:
                machine = parse_machine(found[1])
            except InvalidMachineType as exc:
                fail(found[0], str(exc), found[1])

        if row_errors:
            errors.extend(row_errors)
            continue
        assert round_no is not None and date is not None and numbers is not None
        assert bonus is not None and machine is not None
        draws.append(Draw(round=round_no, date=date, numbers=tuple(numbers), bonus=bonus, machine=machine))

    draws.sort(key=lambda d: d.round)
    return draws, errors


def parse_draws_json(obj: Any, *, default_machine: int | str | None = None) -> tuple[list[Draw], list[DrawImportError]]:
    """Import draws from JSON: a list of records, ``{"draws": [...]}``, one record, or JSON text/bytes.

    Field names: ours (``round, date, numbers, bonus, machine`` or ``n1..n6``) or the official ones
    (``drwNo, drwNoDate, drwtNo1..drwtNo6, bnusNo``) with ``machine`` / ``machine_type`` (1, "1", "1호기").
    Other fields (``totSellamnt``, ``firstWinamnt`` …) are ignored. ``default_machine`` is used for
    records without a machine; without it such records are errors.

    Returns ``(draws sorted by round, errors)``; a record with any error is left out.
    """
    if isinstance(obj, (bytes, bytearray)):
        obj = obj.decode("utf-8-sig")
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as exc:
            return [], [DrawImportError(row=0, field="*", reason=f"invalid JSON: {exc}")]
    if isinstance(obj, Mapping):
        obj = obj["draws"] if "draws" in obj and isinstance(obj["draws"], list) else [obj]
    if not isinstance(obj, list):
        return [], [DrawImportError(row=0, field="*", reason="expected a list of draw records")]
    machine = None if default_machine is None else parse_machine(default_machine)
    return _parse_records(obj, default_machine=machine)


def parse_draws_csv(text: str | bytes, *, default_machine: int | str | None = None) -> tuple[
    list[Draw], list[DrawImportError]
]:
    """Import draws from CSV text with a header row (comma, semicolon or tab separated).

    Same field names as :func:`parse_draws_json`; ``numbers`` may be one quoted cell such as
    ``"3 5 13 20 21 37"`` or ``"3,5,13,20,21,37"``. Blank lines are skipped. ``row`` in errors is the
    0-based data record, ``line`` the 1-based line in the text (header = line 1).
    """
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8-sig")
    text = text.lstrip("\ufeff")
    header_line = next((ln for ln in text.splitlines() if ln.strip()), "")
    delimiter = max((",", ";", "\t"), key=header_line.count)
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    if reader.fieldnames is None:
        return [], [DrawImportError(row=0, field="*", reason="empty CSV (no header row)", line=1)]
    reader.fieldnames = [name.strip() for name in reader.fieldnames]
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    for record in reader:
        values = [v for k, v in record.items() if k is not None]
        if all(v is None or not str(v).strip() for v in values):
            continue
        records.append({k: (v.strip() if isinstance(v, str) else v) for k, v in record.items() if k is not None})
        lines.append(reader.line_num)
    machine = None if default_machine is None else parse_machine(default_machine)
    return _parse_records(records, default_machine=machine, lines=lines)


def multi_hot(draws: Sequence[Draw]) -> np.ndarray:
    """(len(draws), 45) float32 matrix with 1 where the number was drawn (bonus excluded)."""
    matrix = np.zeros((len(draws), NUMBER_MAX), dtype=np.float32)
    for row, draw in enumerate(draws):
        matrix[row, [n - 1 for n in draw.numbers]] = 1.0
    return matrix


def draws_for_machine(draws: Iterable[Draw], machine: str | int | None) -> list[Draw]:
    """The draws of one machine (all draws when ``machine`` is None), sorted by round."""
    if machine is None:
        return sorted(draws, key=lambda d: d.round)
    number = parse_machine(machine)
    return sorted((d for d in draws if d.machine == number), key=lambda d: d.round)


FIRST_DRAW_DATE: Final = dt.date(2002, 12, 7)
DEFAULT_SYNTHETIC_END_DATE: Final = dt.date(2025, 8, 23)


def synthetic_history(
    n: int = 1200,
    seed: int = 20250823,
    end_date: dt.date = DEFAULT_SYNTHETIC_END_DATE,
) -> list[Draw]:
    """SYNTHETIC draws for development, tests and benchmarks: NOT real lottery results.

    ``n`` uniform random draws (six numbers and a bonus without replacement from 1..45), rounds
    1..n a week apart with the last on ``end_date``, machines 1|2|3 chosen uniformly at random.
    Every draw has ``synthetic=True``. Deterministic for a given seed.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    rng = np.random.default_rng(seed)
    draws: list[Draw] = []
    for i in range(n):
        picked = rng.choice(NUMBER_MAX, size=NUMBERS_PER_DRAW + 1, replace=False) + 1
        draws.append(
            Draw(
                round=i + 1,
                date=end_date - dt.timedelta(weeks=n - 1 - i),
                numbers=tuple(sorted(int(x) for x in picked[:NUMBERS_PER_DRAW])),
                bonus=int(picked[NUMBERS_PER_DRAW]),
                machine=int(rng.integers(1, 4)),  # type: ignore[arg-type]
                synthetic=True,
            )
        )
    return draws


SYNTHETIC: Final = True
"""Marker read by tooling: :func:`synthetic_history` output is synthetic (each draw has ``synthetic=True``)."""


# ---------------------------------------------------------------------------------------------------------------
# importing a draw file (POST /api/draws)


def _csv_records(text: str) -> list[tuple[dict[str, Any], int]]:
    """The CSV data records with their 1-based line, read as ``ml.lotto.draws.parse_draws_csv`` reads them."""
    text = text.lstrip("\ufeff")
    header_line = next((ln for ln in text.splitlines() if ln.strip()), "")
    delimiter = max((",", ";", "\t"), key=header_line.count)
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    if reader.fieldnames is None:
        return []
    reader.fieldnames = [name.strip() for name in reader.fieldnames]
    out = []
    for record in reader:
        values = [v for k, v in record.items() if k is not None]
        if all(v is None or not str(v).strip() for v in values):
            continue
        clean = {k: (v.strip() if isinstance(v, str) else v) for k, v in record.items() if k is not None}
        out.append((clean, reader.line_num))
    return out


def _json_records(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return obj["draws"] if isinstance(obj.get("draws"), list) else [obj]
    return obj if isinstance(obj, list) else []


def import_draws(fmt: str, data: Any, default_machine: int | None) -> dict[str, Any]:
    """A draw file (``csv`` text or parsed ``json``) parsed, with every valid draw's record row (and CSV line):
    ``{"rows_total", "draws": [{row, line, round, date, numbers, bonus, machine}], "errors": [...]}``."""
    if fmt == "csv":
        draws, errors = parse_draws_csv(str(data), default_machine=default_machine)
        records = _csv_records(str(data))
    else:
        draws, errors = parse_draws_json(data, default_machine=default_machine)
        records = [(r, None) for r in _json_records(data)]
    bad_rows = {e.row for e in errors}
    where: dict[int, tuple[int, int | None]] = {}
    for row, (record, line) in enumerate(records):
        if row in bad_rows:
            continue
        single, _ = parse_draws_json([record], default_machine=default_machine)
        if single:
            where.setdefault(single[0].round, (row, line))
    return {
        "rows_total": len(records),
        "draws": [
            {
                "row": where.get(d.round, (None, None))[0],
                "line": where.get(d.round, (None, None))[1],
                "round": d.round,
                "date": d.date.isoformat(),
                "numbers": list(d.numbers),
                "bonus": d.bonus,
                "machine": d.machine,
            }
            for d in draws
        ],
        "errors": [e.model_dump(mode="json") for e in errors],
    }
