"""Verdicts: rollback, proceed and hold, and their error rates under the sequential (every-window) procedure."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from ml.canary.aggregator import ArmTotals
from ml.canary.analysis import DEFAULT_STEPS, CanaryPolicy, decide, next_step
from ml.canary.routing import Arm
from ml.canary.simulation import CanarySimulator, run_canary, scenario
from ml.canary.stats import mixture_radius


def totals(arm: Arm, labelled: int, accuracy: float, latency_ms: float, *, requests: int = 20_000) -> ArmTotals:
    correct = round(labelled * accuracy)
    return ArmTotals.from_counts(
        arm,
        requests=requests,
        errors=requests // 1000,
        latencies_ms=[latency_ms] * (requests - requests // 1000),
        tp=correct // 2,
        tn=correct - correct // 2,
        fp=(labelled - correct) // 2,
        fn=labelled - correct - (labelled - correct) // 2,
    )


# --- the three outcomes on simulated traffic, through the aggregator ---------------------------------
def test_canary_5_points_less_accurate_is_rolled_back() -> None:
    run = run_canary(scenario("worse"), seed=11, max_windows=60)
    assert run.outcome == "rollback"
    assert run.final is not None
    accuracy = run.final.numbers["checks"]["accuracy"]
    assert accuracy["status"] == "harm" and accuracy["cs_high"] < -0.01
    assert "worse than the 1.0-pt tolerance → rollback." in run.final.reason_en
    assert run.final.reason_ko.startswith("새 모델의 정확도가 기존보다") and "롤백" in run.final.reason_ko
    assert all(rec == "hold" for _, _, rec in run.history[:-1])  # held until the evidence was there


def test_canary_5_points_more_accurate_proceeds_through_the_steps() -> None:
    run = run_canary(scenario("better"), seed=11, max_windows=60)
    assert run.outcome == "proceed"
    steps = [pct for _, pct, _ in run.history]
    assert steps == sorted(steps) and steps[0] == 10.0 and steps[-1] == 50.0
    assert run.final is not None and run.final.numbers["next_percentage"] == 100.0
    assert run.final.reason_en.endswith("→ proceed (50% → 100%).")
    assert run.final.reason_ko.startswith("새 모델이") and "(정확도 +" in run.final.reason_ko
    assert "응답 시간" in run.final.reason_ko


@pytest.mark.parametrize(("name", "expected"), [("worse", "rollback"), ("better", "proceed")])
def test_power_a_5_point_difference_is_found_in_nearly_every_canary(name: str, expected: str) -> None:
    outcomes = [run_canary(scenario(name), seed=s, max_windows=60, level="counts").outcome for s in range(40)]
    assert outcomes.count(expected) >= 38, outcomes
    assert outcomes.count("rollback" if expected == "proceed" else "proceed") == 0


# --- false rollbacks under continuous monitoring ---------------------------------------------------
def test_equal_models_are_falsely_rolled_back_in_at_most_5_percent_of_200_canaries() -> None:
    runs = [run_canary(scenario("equal"), seed=s, max_windows=40, level="counts") for s in range(200)]
    rollbacks = sum(run.outcome == "rollback" for run in runs)
    assert sum(run.windows for run in runs) >= 200 * 30  # the verdict really was checked window after window
    assert rollbacks <= 10, rollbacks


def test_a_canary_exactly_at_the_tolerance_is_rarely_rolled_back_where_naive_peeking_is_not() -> None:
    """The worst case the tolerance allows (1 pt less accurate), checked after each of 30 windows.

    The confidence sequence keeps false rollbacks under 5 %; a fixed-sample 95 % interval peeked at
    after every window does not (this is what makes this test able to fail).
    """
    policy = CanaryPolicy()
    ours = naive = 0
    for seed in range(200):
        sim = CanarySimulator(scenario("equal", canary_accuracy=0.89), seed=seed, canary_percentage=10)
        ours_hit = naive_hit = False
        for _ in range(30):
            arms = sim.advance_totals(60)
            b, c = arms["baseline"], arms["canary"]
            ours_hit = ours_hit or decide(b, c, policy).recommendation == "rollback"
            if min(b.labelled, c.labelled) >= policy.min_labelled and not naive_hit:
                pb, pc = b.correct / b.labelled, c.correct / c.labelled
                se = math.sqrt(pb * (1 - pb) / b.labelled + pc * (1 - pc) / c.labelled)
                naive_hit = pc - pb + 1.96 * se < -policy.accuracy_tolerance
        ours += ours_hit
        naive += naive_hit
    assert ours <= 10, ours
    assert naive > 10, naive  # the setting is hard enough to catch an invalid procedure


# --- hold ----------------------------------------------------------------------------------------
def test_too_few_samples_hold() -> None:
    run = run_canary(scenario("worse", requests_per_s=2.0), seed=1, max_windows=3)
    assert run.outcome == "hold" and run.final is not None
    assert run.final.recommendation == "hold"
    assert run.final.reason_en.startswith("Not enough traffic yet")
    assert run.final.reason_ko.startswith("데이터 부족")


def test_enough_requests_but_too_few_labels_hold_on_accuracy() -> None:
    run = run_canary(scenario("worse", label_fraction=0.002), seed=2, max_windows=20, level="counts")
    assert run.outcome == "hold" and run.final is not None
    assert run.final.numbers["checks"]["accuracy"]["status"] == "insufficient"
    assert "labelled predictions so far" in run.final.reason_en


def test_inconclusive_holds_and_says_why() -> None:
    verdict = decide(totals("baseline", 3000, 0.90, 40), totals("canary", 400, 0.90, 40))
    assert verdict.recommendation == "hold"
    assert verdict.numbers["checks"]["accuracy"]["status"] == "inconclusive"
    assert "neither ruled out nor shown yet" in verdict.reason_en and "판단할 수 없음" in verdict.reason_ko


# --- error rate and latency ------------------------------------------------------------------------
def test_a_failing_canary_is_rolled_back_without_waiting_for_labels() -> None:
    run = run_canary(scenario("equal", canary_error_rate=0.2, label_fraction=0.0), seed=3, max_windows=20)
    assert run.outcome == "rollback" and run.final is not None
    assert run.final.numbers["checks"]["error_rate"]["status"] == "harm"
    assert "error rate" in run.final.reason_en and "오류율" in run.final.reason_ko
    assert run.windows <= 6  # as soon as the canary has min_requests (500) requests


def test_latency_rule() -> None:
    slow = run_canary(scenario("equal", canary_latency_median_ms=60.0), seed=4, max_windows=20, level="counts")
    assert slow.outcome == "rollback" and slow.final is not None
    assert slow.final.numbers["checks"]["latency"]["status"] == "harm"
    assert "p95 latency" in slow.final.reason_en
    # 2.5 % slower is inside the tolerance (+10 % and +5 ms): never a rollback
    near = run_canary(scenario("better", canary_latency_median_ms=41.0), seed=4, max_windows=60, level="counts")
    assert near.outcome == "proceed"


# --- reasons and numbers ---------------------------------------------------------------------------
def test_proceed_reason_in_the_seed_style() -> None:
    baseline, canary = totals("baseline", 10_000, 0.94, 45.0), totals("canary", 10_000, 0.96, 42.0)
    verdict = decide(baseline, canary, current_percentage=25)
    assert verdict.recommendation == "proceed"
    assert verdict.reason_ko.startswith("새 모델이 성능 향상을 보임 (정확도 +2.0%, 응답 시간 -3ms)")
    assert verdict.reason_en.startswith("Canary improves on baseline (accuracy +2.0 pts, mean latency -3 ms)")
    assert verdict.numbers["metrics"] == {
        "new_model": {"accuracy": 0.96, "avg_response_time_ms": 42.0},
        "old_model": {"accuracy": 0.94, "avg_response_time_ms": 45.0},
    }
    assert verdict.numbers["next_percentage"] == 50.0
    json.dumps(verdict.model_dump(), allow_nan=False)


def test_rollback_reason_carries_the_numbers() -> None:
    verdict = decide(totals("baseline", 10_880, 0.958, 40.0), totals("canary", 1204, 0.912, 40.0))
    assert verdict.recommendation == "rollback"
    assert "Canary accuracy 0.912 vs baseline 0.958 (-4.6 pts, 98.3% CS [" in verdict.reason_en
    assert "on 1,204 / 10,880 labelled predictions: worse than the 1.0-pt tolerance → rollback." in verdict.reason_en
    assert verdict.reason_ko.startswith("새 모델의 정확도가 기존보다 4.6%p 낮음 (0.912 vs 0.958")
    check = verdict.numbers["checks"]["accuracy"]
    assert check["cs_low"] < check["diff"] < check["cs_high"] < -0.01
    json.dumps(verdict.model_dump(), allow_nan=False)


# --- policy and statistics ---------------------------------------------------------------------------
def test_policy_defaults_steps_and_validation() -> None:
    policy = CanaryPolicy()
    assert policy.steps == DEFAULT_STEPS == (10.0, 25.0, 50.0, 100.0)
    assert [policy.next_step(p) for p in (0, 10, 25, 50, 100)] == [10.0, 25.0, 50.0, 100.0, None]
    assert next_step(30) == 50.0
    assert policy.alpha_per_metric == pytest.approx(0.05 / 3)
    with pytest.raises(ValidationError):
        CanaryPolicy(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        CanaryPolicy(steps=(50, 25))
    with pytest.raises(ValidationError):
        CanaryPolicy(alpha=0)


def test_mixture_radius_formula_and_cost_of_always_validity() -> None:
    v, tau, alpha = 1e-4, 0.025, 0.05
    expected = math.sqrt(2 * v * (v + tau**2) / tau**2 * math.log(math.sqrt((v + tau**2) / v) / alpha))
    assert mixture_radius(v, tau, alpha) == pytest.approx(expected)
    radii = [mixture_radius(0.09 / n, tau, alpha) for n in (100, 1000, 10_000, 100_000)]
    assert radii == sorted(radii, reverse=True)
    fixed = 1.96 * math.sqrt(0.09 / 1000)
    assert 1.2 * fixed < mixture_radius(0.09 / 1000, tau, alpha) < 2.0 * fixed
