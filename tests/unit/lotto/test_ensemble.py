from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from pydantic import ValidationError

from ml.lotto.draws import Draw
from ml.lotto.ensemble import (
    EnsembleRequest,
    StackingCombiner,
    combine_scores,
    ensemble_predict,
    voting_weights,
)
from ml.lotto.models import LottoModel, create_model

ALL = ["pytorch_transformer", "sklearn_ensemble", "enhanced_predictor"]


@pytest.mark.parametrize("method", ["weighted_voting", "stacking", "blending"])
def test_ensemble_sets_valid_and_flagged(fitted_models: Mapping[str, LottoModel], history: list[Draw],
                                         method: str) -> None:
    result = ensemble_predict(fitted_models, history, "2호기", sets_count=10, method=method,  # type: ignore[arg-type]
                              model_names=ALL, confidence_threshold=0.7, rng=3)
    assert result.machine_type == "2호기"
    assert len(result.predictions) == 10
    assert len({tuple(p.numbers) for p in result.predictions}) == 10
    for p in result.predictions:
        assert p.numbers == sorted(p.numbers) and len(set(p.numbers)) == 6
        assert all(1 <= n <= 45 for n in p.numbers)
        assert p.algorithm_used == f"ensemble_{method}"
        assert (p.confidence_score < 0.7) == p.below_threshold
        assert any("당첨 확률 아님" in line for line in p.explanation)
    meta = result.metadata
    assert meta.models == ALL and set(meta.model_metrics) == set(ALL)
    assert meta.threshold_met == (meta.sets_below_threshold == 0)


def test_unreachable_threshold_returns_best_sets_flagged(fitted_models: Mapping[str, LottoModel],
                                                         history: list[Draw]) -> None:
    result = ensemble_predict(fitted_models, history, 1, sets_count=5, model_names=ALL,
                              confidence_threshold=1.0, rng=0, max_candidates=2048)
    assert len(result.predictions) == 5
    assert all(p.below_threshold for p in result.predictions)
    assert not result.metadata.threshold_met and result.metadata.sets_below_threshold == 5
    # no set can reach 1.0, so no search is made: one batch is drawn and its sets are returned flagged
    assert not result.metadata.threshold_reachable and result.metadata.max_confidence_score < 1.0
    assert result.metadata.candidates_evaluated == 512
    scores = [p.confidence_score for p in result.predictions]
    assert scores == sorted(scores, reverse=True)
    assert all("기준" in p.explanation[-2] for p in result.predictions)


def test_combiners(fitted_models: Mapping[str, LottoModel], history: list[Draw]) -> None:
    scores = {n: fitted_models[n].predict(history) for n in ALL}
    voting = combine_scores(scores, "weighted_voting", weights={"pytorch_transformer": 1, "sklearn_ensemble": 0,
                                                                "enhanced_predictor": 0})
    np.testing.assert_allclose(voting, scores["pytorch_transformer"], rtol=1e-6)
    weights = voting_weights({n: fitted_models[n] for n in ALL})
    assert sum(weights.values()) == pytest.approx(1.0)
    blended = combine_scores(scores, "blending")
    assert blended.sum() == pytest.approx(6.0)
    # rank-preserving: the blended profile is the members' mean sorted profile
    profile = np.mean([np.sort(s)[::-1] for s in scores.values()], axis=0)
    np.testing.assert_allclose(np.sort(blended)[::-1], profile / profile.sum() * 6, rtol=1e-6)
    # one member blended alone keeps its order
    alone = combine_scores({"sklearn_ensemble": scores["sklearn_ensemble"]}, "blending")
    assert np.argmax(alone) == np.argmax(scores["sklearn_ensemble"])
    with pytest.raises(ValueError):
        combine_scores(scores, "stacking")


def test_stacking_combiner_fits_on_held_out_scores_and_round_trips(fitted_models: Mapping[str, LottoModel],
                                                                   history: list[Draw]) -> None:
    members = {n: fitted_models[n] for n in ALL}
    stacker = StackingCombiner(C=0.5).fit(members)
    assert stacker.members == ALL and stacker.metrics["rounds"] > 0
    restored = StackingCombiner.from_bytes(stacker.to_bytes())
    scores = {n: members[n].predict(history) for n in ALL}
    np.testing.assert_allclose(restored.predict(scores), stacker.predict(scores))
    assert stacker.predict(scores).sum() == pytest.approx(6.0)
    other = StackingCombiner().fit({n: members[n] for n in ALL[:2]})
    with pytest.raises(ValueError, match="stacker was fit on"):
        ensemble_predict(members, history, 1, method="stacking", stacker=other)
    with pytest.raises(ValidationError):
        StackingCombiner(C=0)


def test_request_schema_and_missing_models(fitted_models: Mapping[str, LottoModel], history: list[Draw]) -> None:
    request = EnsembleRequest(machine_type="2호기", sets_count=5)
    assert request.models == ["pytorch_transformer", "sklearn_ensemble"]
    assert request.ensemble_method == "weighted_voting" and request.confidence_threshold == 0.7
    for bad in ({"sets_count": 21}, {"confidence_threshold": 1.5}, {"models": ["gpt"]},
                {"ensemble_method": "bagging"}, {"machine_type": "5호기"}):
        with pytest.raises(ValidationError):
            EnsembleRequest.model_validate({"machine_type": "1호기", **bad})
    with pytest.raises(ValueError, match="not trained"):
        ensemble_predict({"sklearn_ensemble": fitted_models["sklearn_ensemble"]}, history, 1,
                         model_names=["pytorch_transformer"])
    with pytest.raises(ValueError, match="not trained"):
        ensemble_predict({"sklearn_ensemble": create_model("sklearn_ensemble")}, history, 1)
