"""Canary and shadow analysis: sticky routing, durable evidence (joined predictions and strata), always-valid
stratified verdicts, simulation and calibration.

Pure code: no network, database or Kafka. See ``docs/canary.md``.
"""

from ml.canary.analysis import DEFAULT_STEPS, CanaryPolicy, Verdict, comparison, decide, next_step, status_metrics
from ml.canary.evidence import ArmTotals, Evidence, MemoryLedger, contributions, delta
from ml.canary.routing import bucket, choose_arm
from ml.canary.simulation import CanaryRun, CanarySimParams, CanarySimulator, run_canary, scenario

__all__ = [
    "DEFAULT_STEPS",
    "ArmTotals",
    "CanaryPolicy",
    "CanaryRun",
    "CanarySimParams",
    "CanarySimulator",
    "Evidence",
    "MemoryLedger",
    "Verdict",
    "bucket",
    "choose_arm",
    "comparison",
    "contributions",
    "decide",
    "delta",
    "next_step",
    "run_canary",
    "scenario",
    "status_metrics",
]
