"""Canary analysis: sticky routing, streaming per-arm aggregation, always-valid verdicts, simulation.

Pure code: no network, database or Kafka. See ``docs/canary.md``.
"""

from ml.canary.aggregator import (
    AggregatorConfig,
    ArmTotals,
    ArmWindowStats,
    CanaryAggregator,
    FeedbackEvent,
    ServedEvent,
    WindowReport,
)
from ml.canary.analysis import DEFAULT_STEPS, CanaryPolicy, Verdict, decide, next_step, status_metrics
from ml.canary.routing import bucket, choose_arm
from ml.canary.simulation import CanaryRun, CanarySimParams, CanarySimulator, run_canary, scenario

__all__ = [
    "DEFAULT_STEPS",
    "AggregatorConfig",
    "ArmTotals",
    "ArmWindowStats",
    "CanaryAggregator",
    "CanaryPolicy",
    "CanaryRun",
    "CanarySimParams",
    "CanarySimulator",
    "FeedbackEvent",
    "ServedEvent",
    "Verdict",
    "WindowReport",
    "bucket",
    "choose_arm",
    "decide",
    "next_step",
    "run_canary",
    "scenario",
    "status_metrics",
]
