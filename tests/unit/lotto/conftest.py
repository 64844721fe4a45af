"""Shared fixtures: the synthetic 1,200-draw history and a small hand-made history."""

from __future__ import annotations

import datetime as dt

import pytest

from ml.lotto.draws import Draw, synthetic_history


@pytest.fixture(scope="session")
def history() -> list[Draw]:
    return synthetic_history(1200, seed=7)


@pytest.fixture
def hand_draws() -> list[Draw]:
    """Three draws of 1호기 (rounds 1, 3, 4) and one of 2호기 (round 2); values worked by hand in the tests."""
    day = dt.date(2025, 1, 4)
    return [
        Draw(round=1, date=day, numbers=(3, 5, 13, 20, 21, 37), bonus=1, machine=1),
        Draw(round=2, date=day + dt.timedelta(weeks=1), numbers=(1, 2, 3, 4, 5, 6), bonus=7, machine=2),
        Draw(round=3, date=day + dt.timedelta(weeks=2), numbers=(3, 10, 23, 30, 41, 45), bonus=2, machine=1),
        Draw(round=4, date=day + dt.timedelta(weeks=3), numbers=(5, 12, 23, 34, 40, 44), bonus=9, machine=1),
    ]


@pytest.fixture(scope="session")
def fitted_models(history: list[Draw]) -> dict[str, object]:
    """The three members fitted once on the synthetic history (small settings to keep the suite fast)."""
    from ml.lotto.models import create_model

    settings: dict[str, dict[str, object]] = {
        "pytorch_transformer": {"epochs": 2, "seed": 1},
        "sklearn_ensemble": {"n_estimators": 25, "seed": 1},
        "enhanced_predictor": {"machine": 3},
    }
    return {name: create_model(name, params).fit(history) for name, params in settings.items()}
