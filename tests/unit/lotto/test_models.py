from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from ml.base import Estimator, TrainingCancelled
from ml.lotto.draws import Draw
from ml.lotto.models import (
    RANDOM_LOG_LOSS,
    EnhancedPredictorModel,
    LottoModel,
    SklearnEnsembleModel,
    TransformerModel,
    create_model,
    load_model,
    number_features,
)

NAMES = ("pytorch_transformer", "sklearn_ensemble", "enhanced_predictor")


def test_random_log_loss_constant() -> None:
    p = 6 / 45
    assert pytest.approx(-(p * np.log(p) + (1 - p) * np.log(1 - p))) == RANDOM_LOG_LOSS
    assert round(RANDOM_LOG_LOSS, 5) == 0.39267


@pytest.mark.parametrize("name", NAMES)
def test_each_model_fits_predicts_and_round_trips(fitted_models: Mapping[str, LottoModel], history: list[Draw],
                                                   name: str) -> None:
    model = fitted_models[name]
    assert isinstance(model, Estimator)
    scores = model.predict(history)
    assert scores.shape == (45,)
    assert scores.sum() == pytest.approx(6.0)
    assert np.all((scores > 0) & (scores < 1))
    metrics = model.metrics
    assert metrics["holdout_log_loss_random_baseline"] == pytest.approx(RANDOM_LOG_LOSS, abs=1e-6)
    assert metrics["holdout_mean_hits_top6_random_baseline"] == pytest.approx(0.8)
    assert metrics["holdout_mean_hits_top6_ci95_low"] <= metrics["holdout_mean_hits_top6"]
    assert metrics["holdout_mean_hits_top6"] <= metrics["holdout_mean_hits_top6_ci95_high"]
    # uniform draws: no model can be much better than the baseline (and a broken one would be much worse)
    assert abs(metrics["holdout_log_loss"] - RANDOM_LOG_LOSS) < 0.02
    assert metrics["holdout_mean_hits_top6_ci95_low"] < 0.8 + 0.25
    assert model.holdout_scores.shape[1] == 45 and len(model.holdout_rounds) == model.holdout_scores.shape[0]
    assert model.holdout_targets.sum(axis=1).tolist() == [6] * len(model.holdout_rounds)

    blob = model.to_bytes()
    restored = type(model).from_bytes(blob)
    assert restored.params == model.params
    assert restored.metrics == model.metrics
    np.testing.assert_allclose(restored.predict(history), scores, rtol=1e-6)
    np.testing.assert_allclose(restored.holdout_scores, model.holdout_scores)
    again = load_model(blob)
    assert type(again) is type(model)
    np.testing.assert_allclose(again.predict(history[:600]), model.predict(history[:600]), rtol=1e-6)


def test_params_are_validated_before_any_work() -> None:
    with pytest.raises(ValidationError):
        TransformerModel(epochs=0)
    with pytest.raises(ValidationError):
        TransformerModel({"epochz": 3})
    with pytest.raises(ValidationError):
        SklearnEnsembleModel(estimator="xgboost")
    with pytest.raises(ValidationError):
        EnhancedPredictorModel(machine=4)
    with pytest.raises(ValueError, match="unknown lotto model"):
        create_model("lstm")
    with pytest.raises(ValueError, match="at least 30 draws"):
        EnhancedPredictorModel().fit([])
    with pytest.raises(RuntimeError, match="not fitted"):
        EnhancedPredictorModel().predict([])


def test_wrong_artifact_kind_is_refused(fitted_models: Mapping[str, LottoModel]) -> None:
    blob = fitted_models["enhanced_predictor"].to_bytes()
    with pytest.raises(ValueError, match="enhanced_predictor"):
        TransformerModel.from_bytes(blob)
    with pytest.raises(ValueError, match="not a modelbus lotto model"):
        load_model(b"garbage")


def test_progress_reaches_100_and_cancellation_stops(history: list[Draw]) -> None:
    seen: list[float] = []

    def record(pct: float, figures: Mapping[str, Any]) -> None:
        seen.append(pct)

    SklearnEnsembleModel(n_estimators=50, step=10).fit(history[:300], progress=record)
    assert seen[-1] == 100.0 and seen == sorted(seen)

    def cancel(pct: float, figures: Mapping[str, Any]) -> None:
        if pct > 10:
            raise TrainingCancelled

    model = TransformerModel(epochs=3)
    with pytest.raises(TrainingCancelled):
        model.fit(history[:300], progress=cancel)
    assert not model.fitted


def test_machine_specific_model_reads_only_its_machine(history: list[Draw]) -> None:
    model = EnhancedPredictorModel(machine=2, window=20).fit(history)
    own = [d for d in history if d.machine == 2]
    assert model.metrics["train_draws"] == len(own)
    np.testing.assert_allclose(model.predict(history), model.predict(own))
    # 3호기's strategy boosts odd numbers, visible in the per-number scores
    odd_boost = EnhancedPredictorModel(machine=3, window=50).fit(history).predict(history)
    plain = EnhancedPredictorModel(machine=3, window=50, apply_strategy=False).fit(history).predict(history)
    assert odd_boost[0::2].sum() > plain[0::2].sum()


def test_number_features_by_hand() -> None:
    matrix = np.zeros((3, 45), dtype=np.float32)
    matrix[0, [0, 1, 2, 3, 4, 5]] = 1  # draw 0: 1..6
    matrix[1, [0, 10, 11, 12, 13, 14]] = 1  # draw 1: 1, 11..15
    features = number_features(matrix, [2], windows=(1, 2))
    assert features.shape == (45, 6)
    number1, number2, number45 = features[0], features[1], features[44]
    assert number1.tolist() == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]  # in both draws, gap 0, odd, low, digit 1
    assert number2.tolist() == [0.0, 0.5, 1.0, 0.0, 0.0, 2.0]  # only in draw 0: gap 1
    assert number45.tolist() == [0.0, 0.0, 100.0, 1.0, 1.0, 5.0]  # never seen: gap capped at 100
