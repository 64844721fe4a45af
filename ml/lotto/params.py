"""The hyperparameters of the lotto ensemble members, one model per member, with no torch or scikit-learn
import: the API validates a training request with them in its own process (``ml.lotto.models`` trains)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from ml.base import Params
from ml.lotto.strategies import SMOOTHING
from schemas.common import JsonFloat, JsonInt


class LottoModelParams(Params):
    machine: Literal[1, 2, 3] | None = Field(default=None, description="learn from this machine's draws only")
    holdout_fraction: JsonFloat = Field(default=0.2, gt=0.0, lt=0.5)
    min_draws: JsonInt = Field(default=30, ge=10, description="fewer draws (after the machine filter) is an error")
    refit: bool = Field(default=True, description="after evaluation, train again on all draws")
    seed: int = 0


class TransformerParams(LottoModelParams):
    context: JsonInt = Field(default=12, ge=2, le=100, description="draws in the input sequence")
    d_model: JsonInt = Field(default=32, ge=8, le=256)
    heads: JsonInt = Field(default=2, ge=1, le=8)
    layers: JsonInt = Field(default=2, ge=1, le=6)
    ff_dim: JsonInt = Field(default=64, ge=8, le=1024)
    dropout: JsonFloat = Field(default=0.1, ge=0.0, lt=1.0)
    epochs: JsonInt = Field(default=5, ge=1, le=200)
    batch_size: JsonInt = Field(default=128, ge=1, le=4096)
    learning_rate: JsonFloat = Field(default=1e-3, gt=0.0, le=1.0)
    weight_decay: JsonFloat = Field(default=1e-4, ge=0.0)


class SklearnEnsembleParams(LottoModelParams):
    estimator: Literal["hist_gradient_boosting", "random_forest"] = "hist_gradient_boosting"
    n_estimators: JsonInt = Field(default=100, ge=10, le=2000, description="boosting iterations or trees")
    learning_rate: JsonFloat = Field(default=0.05, gt=0.0, le=1.0, description="boosting only")
    max_depth: JsonInt | None = Field(default=3, ge=1, le=32)
    min_samples_leaf: JsonInt = Field(default=50, ge=1)
    min_history: JsonInt = Field(default=10, ge=1, description="first training target index")
    step: JsonInt = Field(default=25, ge=1, description="estimators added between progress reports")


class EnhancedPredictorParams(LottoModelParams):
    window: JsonInt = Field(default=50, ge=10, le=100, description="latest draws counted")
    smoothing: JsonFloat = Field(default=SMOOTHING, gt=0.0)
    half_life: JsonFloat | None = Field(default=None, gt=0.0, description="recency weighting in draws; None = off")
    apply_strategy: bool = Field(default=True, description="apply params.machine's strategy")


PARAMS: dict[str, type[LottoModelParams]] = {
    "pytorch_transformer": TransformerParams,
    "sklearn_ensemble": SklearnEnsembleParams,
    "enhanced_predictor": EnhancedPredictorParams,
}


def validate_params(model_type: str, parameters: Mapping[str, Any]) -> LottoModelParams:
    """The member's parameters (defaults filled in); ``ValueError`` for an unknown member, pydantic's
    ``ValidationError`` for bad values."""
    if model_type not in PARAMS:
        raise ValueError(f"unknown lotto model {model_type!r}; valid: {', '.join(PARAMS)}")
    return PARAMS[model_type].model_validate(dict(parameters))
