"""Lotto 6/45 domain: draws and import, per-machine statistics, generators, backtests, ensemble models.

Pure code (no network, database or Kafka). Lotto draws are uniform random: every score here is a
model score, never a chance of winning, and backtests report hits beside the exact random baseline.
See docs/lotto.md.

Imports are lazy: ``from ml.lotto import machine_analysis`` does not load torch or scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "BacktestResult": "ml.lotto.backtest",
    "Draw": "ml.lotto.draws",
    "DrawImportError": "ml.lotto.draws",
    "EmptyHistoryError": "ml.lotto.statistics",
    "EnhancedPredictorModel": "ml.lotto.models",
    "EnsembleRequest": "ml.lotto.ensemble",
    "EnsembleResult": "ml.lotto.ensemble",
    "EnsembleSet": "ml.lotto.ensemble",
    "GenerateRequest": "ml.lotto.generators",
    "GenerationResult": "ml.lotto.generators",
    "InvalidMachineType": "ml.lotto.draws",
    "LottoModel": "ml.lotto.models",
    "MODEL_TYPES": "ml.lotto.models",
    "MachineAnalysis": "ml.lotto.statistics",
    "PerformanceMetrics": "ml.lotto.backtest",
    "PredictionMetadata": "ml.lotto.generators",
    "PredictionSet": "ml.lotto.generators",
    "RANDOM_EXPECTED_MATCHES": "ml.lotto.backtest",
    "RANDOM_P_3PLUS": "ml.lotto.backtest",
    "SYNTHETIC": "ml.lotto.draws",
    "SklearnEnsembleModel": "ml.lotto.models",
    "StackingCombiner": "ml.lotto.ensemble",
    "TransformerModel": "ml.lotto.models",
    "ac_value": "ml.lotto.statistics",
    "backtest": "ml.lotto.backtest",
    "combine_scores": "ml.lotto.ensemble",
    "create_model": "ml.lotto.models",
    "differentiation_score": "ml.lotto.backtest",
    "draws_for_machine": "ml.lotto.draws",
    "ensemble_predict": "ml.lotto.ensemble",
    "generate": "ml.lotto.generators",
    "generate_sets": "ml.lotto.generators",
    "load_model": "ml.lotto.models",
    "machine_analysis": "ml.lotto.statistics",
    "machine_statistics": "ml.lotto.backtest",
    "machine_label": "ml.lotto.draws",
    "match_distribution": "ml.lotto.backtest",
    "parse_draws_csv": "ml.lotto.draws",
    "parse_draws_json": "ml.lotto.draws",
    "parse_machine": "ml.lotto.draws",
    "performance_metrics": "ml.lotto.backtest",
    "synthetic_history": "ml.lotto.draws",
}

__all__ = [
    "BacktestResult",
    "Draw",
    "DrawImportError",
    "EmptyHistoryError",
    "EnhancedPredictorModel",
    "EnsembleRequest",
    "EnsembleResult",
    "EnsembleSet",
    "GenerateRequest",
    "GenerationResult",
    "InvalidMachineType",
    "LottoModel",
    "MODEL_TYPES",
    "MachineAnalysis",
    "PerformanceMetrics",
    "PredictionMetadata",
    "PredictionSet",
    "RANDOM_EXPECTED_MATCHES",
    "RANDOM_P_3PLUS",
    "SYNTHETIC",
    "SklearnEnsembleModel",
    "StackingCombiner",
    "TransformerModel",
    "ac_value",
    "backtest",
    "combine_scores",
    "create_model",
    "differentiation_score",
    "draws_for_machine",
    "ensemble_predict",
    "generate",
    "generate_sets",
    "load_model",
    "machine_analysis",
    "machine_label",
    "machine_statistics",
    "match_distribution",
    "parse_draws_csv",
    "parse_draws_json",
    "parse_machine",
    "performance_metrics",
    "synthetic_history",
]

if TYPE_CHECKING:
    from ml.lotto.backtest import (
        RANDOM_EXPECTED_MATCHES,
        RANDOM_P_3PLUS,
        BacktestResult,
        PerformanceMetrics,
        backtest,
        differentiation_score,
        machine_statistics,
        match_distribution,
        performance_metrics,
    )
    from ml.lotto.draws import (
        SYNTHETIC,
        Draw,
        DrawImportError,
        InvalidMachineType,
        draws_for_machine,
        machine_label,
        parse_draws_csv,
        parse_draws_json,
        parse_machine,
        synthetic_history,
    )
    from ml.lotto.ensemble import (
        EnsembleRequest,
        EnsembleResult,
        EnsembleSet,
        StackingCombiner,
        combine_scores,
        ensemble_predict,
    )
    from ml.lotto.generators import (
        GenerateRequest,
        GenerationResult,
        PredictionMetadata,
        PredictionSet,
        generate,
        generate_sets,
    )
    from ml.lotto.models import (
        MODEL_TYPES,
        EnhancedPredictorModel,
        LottoModel,
        SklearnEnsembleModel,
        TransformerModel,
        create_model,
        load_model,
    )
    from ml.lotto.statistics import EmptyHistoryError, MachineAnalysis, ac_value, machine_analysis


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
