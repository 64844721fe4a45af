from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import ValidationError

from ml.lotto.draws import (
    SYNTHETIC,
    Draw,
    InvalidMachineType,
    machine_label,
    parse_draws_csv,
    parse_draws_json,
    parse_machine,
    synthetic_history,
)

# -- machine parsing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1호기", 1),
        ("2호기", 2),
        ("3호기", 3),
        ("1", 1),
        (" 3 ", 3),
        (2, 2),
        ("1%ED%98%B8%EA%B8%B0", 1),
        ("3%ED%98%B8%EA%B8%B0", 3),
        ("2 호기", 2),
    ],
)
def test_parse_machine_accepts_every_documented_form(value: str | int, expected: int) -> None:
    assert parse_machine(value) == expected


@pytest.mark.parametrize(
    "value", ["4호기", "0", 0, 4, "", "호기", "one", "1호기기", True, 1.0, None, "4%ED%98%B8%EA%B8%B0"]
)
def test_parse_machine_rejects_with_valid_values_listed(value: object) -> None:
    with pytest.raises(InvalidMachineType) as info:
        parse_machine(value)  # type: ignore[arg-type]
    assert str(info.value) == "올바른 호기를 선택하세요. 가능한 값: 1호기, 2호기, 3호기"
    assert info.value.value == value
    assert info.value.code == "INVALID_MACHINE_TYPE"
    assert info.value.field == "machine_type"
    assert isinstance(info.value, ValueError)


def test_machine_label() -> None:
    assert machine_label(1) == "1호기"
    assert machine_label("3") == "3호기"
    assert machine_label("2%ED%98%B8%EA%B8%B0") == "2호기"


# -- the Draw model -----------------------------------------------------------------------------------------------


def test_draw_sorts_numbers_and_parses_machine_label() -> None:
    draw = Draw(round=5, date="2025-08-23", numbers=[37, 3, 21, 5, 13, 20], bonus=1, machine="2호기")
    assert draw.numbers == (3, 5, 13, 20, 21, 37)
    assert draw.machine == 2
    assert draw.machine_type == "2호기"
    assert draw.date == dt.date(2025, 8, 23)
    assert draw.synthetic is False


@pytest.mark.parametrize(
    "changes",
    [
        {"round": 0},
        {"numbers": [1, 2, 3, 4, 5]},
        {"numbers": [1, 2, 3, 4, 5, 46]},
        {"numbers": [1, 2, 3, 4, 5, 5]},
        {"bonus": 3},
        {"bonus": 46},
        {"machine": 4},
        {"date": "2025-02-30"},
        {"extra": 1},
    ],
)
def test_draw_rejects_invalid_values(changes: dict[str, object]) -> None:
    record: dict[str, object] = {
        "round": 1, "date": "2025-01-04", "numbers": [1, 2, 3, 4, 5, 6], "bonus": 7, "machine": 1
    }
    record.update(changes)
    with pytest.raises(ValidationError):
        Draw.model_validate(record)


# -- JSON import --------------------------------------------------------------------------------------------------

OFFICIAL = {
    "returnValue": "success",
    "drwNo": 1186,
    "drwNoDate": "2025-08-23",
    "drwtNo1": 2,
    "drwtNo2": 8,
    "drwtNo3": 13,
    "drwtNo4": 16,
    "drwtNo5": 23,
    "drwtNo6": 28,
    "bnusNo": 35,
    "totSellamnt": 118_628_811_000,
    "firstWinamnt": 1_765_554_375,
    "machine_type": "1호기",
}


def test_json_official_field_names_with_machine_label() -> None:
    older = {**OFFICIAL, "drwNo": 1185, "drwNoDate": "2025.08.16", "machine_type": "3"}
    draws, errors = parse_draws_json([OFFICIAL, older])
    assert errors == []
    assert [d.round for d in draws] == [1185, 1186]  # sorted by round
    latest = draws[1]
    assert latest.numbers == (2, 8, 13, 16, 23, 28)
    assert latest.bonus == 35
    assert latest.machine == 1
    assert latest.date == dt.date(2025, 8, 23)
    assert draws[0].machine == 3 and draws[0].date == dt.date(2025, 8, 16)


def test_json_our_field_names_text_and_wrapper() -> None:
    text = json.dumps(
        {
            "draws": [
                {"round": 1, "date": "2025-01-04", "numbers": [3, 5, 13, 20, 21, 37], "bonus": 1, "machine": 1},
                {"round": 2, "date": "2025-01-11", "n1": 1, "n2": 2, "n3": 3, "n4": 4, "n5": 5, "n6": 6, "bonus": 7,
                 "machine": "2호기"},
            ]
        }
    )
    draws, errors = parse_draws_json(text)
    assert errors == []
    assert [d.numbers for d in draws] == [(3, 5, 13, 20, 21, 37), (1, 2, 3, 4, 5, 6)]
    assert [d.machine for d in draws] == [1, 2]


def test_json_errors_name_row_field_and_reason() -> None:
    good = {"round": 1, "date": "2025-01-04", "numbers": [1, 2, 3, 4, 5, 6], "bonus": 7, "machine": 1}
    records = [
        good,                                                  # 0 ok
        {**good, "round": 1},                                  # 1 duplicate round
        {**good, "round": 3, "numbers": [1, 2, 3, 4, 5, 46]},  # 2 out of range
        {**good, "round": 4, "numbers": [1, 2, 3, 4, 5, 5]},   # 3 repeated
        {**good, "round": 5, "bonus": 6},                      # 4 bonus among numbers
        {**good, "round": 6, "machine": "4호기"},              # 5 bad machine
        {**good, "round": 7, "date": "2025-13-01"},            # 6 bad date
        {**good, "round": 8, "date": "yesterday"},             # 7 bad date
        {**good, "round": 9},                                  # 8 ok
        {"drwNo": 10, "drwNoDate": "2025-03-08", "drwtNo1": 1, "drwtNo2": 2, "drwtNo3": 3, "drwtNo4": 4,
         "drwtNo5": 5, "drwtNo6": 60, "bnusNo": 7, "machine": 1},  # 9 official names, out of range
        {**good, "round": 11, "machine": None},                # 10 missing machine
    ]
    draws, errors = parse_draws_json(records)
    assert [d.round for d in draws] == [1, 9]
    by_row = {e.row: e for e in errors}
    assert sorted(by_row) == [1, 2, 3, 4, 5, 6, 7, 9, 10]
    assert by_row[1].field == "round" and "duplicate round 1" in by_row[1].reason and "row 0" in by_row[1].reason
    assert by_row[2].field == "numbers" and "out of range" in by_row[2].reason and "46" in by_row[2].reason
    assert by_row[3].field == "numbers" and "repeated" in by_row[3].reason
    assert by_row[4].field == "bonus" and "among the numbers" in by_row[4].reason
    assert by_row[5].field == "machine" and "1호기, 2호기, 3호기" in by_row[5].reason
    assert by_row[6].field == "date" and "bad date" in by_row[6].reason
    assert by_row[7].field == "date"
    assert by_row[9].field.startswith("drwtNo1") and "60" in by_row[9].reason
    assert by_row[10].field == "machine" and "missing" in by_row[10].reason


def test_json_default_machine_fills_missing_machine() -> None:
    record = {k: v for k, v in OFFICIAL.items() if k != "machine_type"}
    draws, errors = parse_draws_json([record])
    assert draws == [] and errors[0].field == "machine"
    draws, errors = parse_draws_json([record], default_machine="2호기")
    assert errors == [] and draws[0].machine == 2


def test_json_reports_every_problem_of_a_row_and_failed_official_answer() -> None:
    draws, errors = parse_draws_json([{"round": "x", "numbers": "1 2 3", "bonus": 99}, {"returnValue": "fail"}])
    assert draws == []
    fields = {(e.row, e.field) for e in errors}
    assert {(0, "round"), (0, "date"), (0, "numbers"), (0, "bonus"), (0, "machine"), (1, "returnValue")} <= fields


def test_json_invalid_text() -> None:
    draws, errors = parse_draws_json("{not json")
    assert draws == [] and errors[0].field == "*" and "invalid JSON" in errors[0].reason


# -- CSV import ---------------------------------------------------------------------------------------------------


def test_csv_official_columns_with_machine_type_labels() -> None:
    text = (
        "\ufeffdrwNo,drwNoDate,drwtNo1,drwtNo2,drwtNo3,drwtNo4,drwtNo5,drwtNo6,bnusNo,machine_type\n"
        "1185,2025-08-16,6,7,19,21,27,36,2,2호기\n"
        "\n"
        "1186,2025-08-23,2,8,13,16,23,28,35,1호기\n"
    )
    draws, errors = parse_draws_csv(text)
    assert errors == []
    assert [(d.round, d.machine) for d in draws] == [(1185, 2), (1186, 1)]
    assert draws[1].numbers == (2, 8, 13, 16, 23, 28)


def test_csv_our_columns_numbers_cell_and_n_columns() -> None:
    text = (
        "round,date,numbers,bonus,machine\n"
        '1,2025-01-04,"3 5 13 20 21 37",1,1\n'
        '2,2025-01-11,"[1, 2, 3, 4, 5, 6]",7,3\n'
    )
    draws, errors = parse_draws_csv(text)
    assert errors == [] and [d.numbers for d in draws] == [(3, 5, 13, 20, 21, 37), (1, 2, 3, 4, 5, 6)]

    text = "round;date;n1;n2;n3;n4;n5;n6;bonus;machine\n1;2025/01/04;6;5;4;3;2;1;7;2\n"
    draws, errors = parse_draws_csv(text)
    assert errors == [] and draws[0].numbers == (1, 2, 3, 4, 5, 6) and draws[0].machine == 2


def test_csv_errors_carry_row_and_line() -> None:
    text = (
        "round,date,n1,n2,n3,n4,n5,n6,bonus,machine\n"  # line 1
        "1,2025-01-04,1,2,3,4,5,6,7,1\n"                # line 2, row 0: ok
        "\n"                                            # line 3: blank, skipped
        "1,2025-01-11,1,2,3,4,5,6,7,1\n"                # line 4, row 1: duplicate round
        "3,2025-01-18,1,2,3,4,5,x,7,1\n"                # line 5, row 2: not integers
        "4,2025-01-25,1,2,3,4,5,6,7,9호기\n"            # line 6, row 3: bad machine
    )
    draws, errors = parse_draws_csv(text)
    assert [d.round for d in draws] == [1]
    assert [(e.row, e.line, e.field) for e in errors] == [
        (1, 4, "round"),
        (2, 5, "n1,n2,n3,n4,n5,n6"),
        (3, 6, "machine"),
    ]


# -- synthetic history ------------------------------------------------------------------------------------------


def test_synthetic_history_is_marked_valid_weekly_and_deterministic() -> None:
    end = dt.date(2025, 8, 23)
    draws = synthetic_history(120, seed=3, end_date=end)
    assert SYNTHETIC is True
    assert len(draws) == 120 and all(d.synthetic for d in draws)
    assert [d.round for d in draws] == list(range(1, 121))
    assert draws[-1].date == end and draws[0].date == end - dt.timedelta(weeks=119)
    assert all(len(set(d.numbers)) == 6 and list(d.numbers) == sorted(d.numbers) for d in draws)
    assert all(d.bonus not in d.numbers for d in draws)
    assert {d.machine for d in draws} == {1, 2, 3}
    assert synthetic_history(120, seed=3, end_date=end) == draws
    assert synthetic_history(120, seed=4, end_date=end) != draws
