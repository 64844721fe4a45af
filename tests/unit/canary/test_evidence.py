"""Prediction records and strata: folding facts in any order, exactly once, labels days late, too late,
unmatched labels, shadow pairing, and strata that telescope to what replay rebuilds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from ml.canary.evidence import (
    BLOCK_SECONDS,
    UNMATCHED,
    Evidence,
    MemoryLedger,
    contributions,
    delta,
    flatten,
    fold_feedback,
    fold_served,
    merge_into,
    nest,
    strata_docs,
    stratum_id,
)

T0 = datetime(2025, 11, 16, 14, 0, tzinfo=UTC)
NEVER = lambda _analysis: None  # noqa: E731 - the horizon of an analysis still taking labels


def served(
    arm: str = "canary", *, label: int | None = 1, error: str | None = None, pct: float = 10.0
) -> dict[str, Any]:
    return {
        "arm": arm, "model_id": f"m-{arm}", "canary_id": "cn1", "percentage": pct, "label": label,
        "score": 0.7, "error": error, "latency_ms": 12.5,
    }


def test_fold_in_any_order_gives_one_record_and_the_same_contributions() -> None:
    a = fold_feedback(fold_served(None, served(), T0), 1, T0 + timedelta(days=2))
    b = fold_served(fold_feedback(None, 1, T0 + timedelta(days=2)), served(), T0)
    assert a == b
    sid = stratum_id("cn1", 10.0, int(T0.timestamp() // BLOCK_SECONDS))
    assert contributions(a, NEVER) == {
        sid: {"c.requests": 1, "c.ok": 1, "c.lat_n": 1, "c.lat_us": 12500, f"c.h.{_bucket(12.5)}": 1, "c.tp": 1}
    }


def _bucket(ms: float) -> int:
    from ml.canary.stats import latency_bucket

    return latency_bucket(ms)


def test_repeats_change_nothing_and_the_first_label_wins() -> None:
    doc = fold_served(None, served(), T0)
    assert fold_served(doc, served(label=0), T0) is None
    labelled = fold_feedback(doc, 0, T0)
    assert fold_feedback(labelled, 1, T0) is None and labelled is not None and labelled["truth"] == 0


def test_a_label_before_its_prediction_is_unmatched_until_the_prediction_arrives() -> None:
    ledger = MemoryLedger()
    ledger.feedback("p1", 1, T0)
    assert ledger.unmatched_labels == 1 and not ledger.evidence
    ledger.served("p1", served(), T0 - timedelta(days=2))
    assert ledger.unmatched_labels == 0
    assert ledger.of("cn1").pooled("c").tp == 1


def test_labels_after_the_horizon_count_as_too_late() -> None:
    ended = T0 + timedelta(hours=1)
    ledger = MemoryLedger(horizon_end=lambda a: ended + timedelta(days=30) if a == "cn1" else None)
    ledger.served("p1", served(), T0)
    ledger.served("p2", served(), T0)
    ledger.feedback("p1", 1, ended + timedelta(days=29))
    ledger.feedback("p2", 1, ended + timedelta(days=31))
    arm = ledger.of("cn1").pooled("c")
    assert (arm.labelled, arm.too_late, arm.waiting) == (1, 1, 0)


def test_errors_count_as_requests_and_never_as_labelled() -> None:
    ledger = MemoryLedger()
    ledger.served("p1", served(label=None, error="boom"), T0)
    ledger.feedback("p1", 1, T0)
    arm = ledger.of("cn1").pooled("c")
    assert (arm.requests, arm.errors, arm.labelled, arm.lat_n) == (1, 1, 0, 0)


def test_a_shadow_is_paired_with_production_on_the_same_request() -> None:
    ledger = MemoryLedger()
    prod = served("baseline", label=1) | {"canary_id": None}
    shadow = {"arm": "shadow", "shadow_id": "sh1", "model_id": "m-s", "percentage": 100.0, "label": 0,
              "score": 0.2, "error": None, "latency_ms": 3.0}
    ledger.served("p1", shadow, T0)  # the shadow's event may come first
    assert not ledger.evidence
    ledger.served("p1", prod, T0)
    ledger.feedback("p1", 1, T0 + timedelta(minutes=5))
    ev = ledger.of("sh1")
    assert (ev.pooled("b").tp, ev.pooled("s").fn) == (1, 1)
    assert "cn1" not in ledger.evidence  # production answered outside any canary


def test_deltas_telescope_to_the_contributions_of_the_final_records() -> None:
    """What the analyser stores (a delta per change, in any batching) equals what replay rebuilds (the sum of the
    final records' contributions), including duplicates, orphans, shadows and late labels."""
    rng = random.Random(5)
    facts: list[tuple[str, str, Any]] = []
    for i in range(400):
        pid = f"p{i}"
        arm = "canary" if i % 4 == 0 else "baseline"
        t = T0 + timedelta(seconds=rng.uniform(0, 3 * BLOCK_SECONDS))
        pct = 10.0 if t < T0 + timedelta(seconds=BLOCK_SECONDS) else 25.0
        facts.append(("served", pid, (served(arm, label=rng.randrange(2), pct=pct), t)))
        if arm == "baseline" and i % 3 == 0:
            facts.append(("served", pid, ({"arm": "shadow", "shadow_id": "sh1", "label": rng.randrange(2),
                                          "latency_ms": 2.0, "percentage": 50.0}, t)))
        if rng.random() < 0.7:
            facts.append(("feedback", pid, (rng.randrange(2), t + timedelta(hours=rng.uniform(0, 100)))))
    facts += facts[:50]  # redelivered
    rng.shuffle(facts)
    ledger = MemoryLedger()
    stored: dict[str, dict[str, int]] = {}
    for kind, pid, (a, b) in facts:
        old = ledger.records.get(pid)
        (ledger.served if kind == "served" else ledger.feedback)(pid, a, b)
        merge_into(stored, delta(old, ledger.records.get(pid), NEVER))
    rebuilt: dict[str, dict[str, int]] = {}
    for doc in ledger.records.values():
        merge_into(rebuilt, contributions(doc, NEVER))
    assert strata_docs(stored) == strata_docs(rebuilt)
    assert UNMATCHED not in {d["_id"] for d in strata_docs(stored)}
    # the stored documents load back into the same evidence
    docs = [d for d in strata_docs(stored) if d.get("analysis_id") == "cn1"]
    loaded = Evidence.from_docs("cn1", docs)
    for code in ("b", "c"):
        assert loaded.pooled(code) == ledger.of("cn1").pooled(code)
    assert loaded.steps == [10.0, 25.0]


def test_nest_and_flatten_round_trip() -> None:
    counts = {"c.requests": 3, "c.h.512": 2, "b.tp": 1}
    assert nest(counts) == {"c": {"requests": 3, "h": {"512": 2}}, "b": {"tp": 1}}
    assert flatten(nest(counts)) == counts


def test_records_scored_in_one_call_are_one_latency_observation() -> None:
    """A batch of records scored by one model call shares one latency: counting it once per record would
    make 50 copies of one value look like 50 independent observations (and the latency CS far too narrow)."""
    first = fold_served(None, served() | {"latency_observed": True}, T0)
    rest = [fold_served(None, served() | {"latency_observed": False}, T0) for _ in range(49)]
    total: dict[str, dict[str, int]] = {}
    for doc in [first, *rest]:
        merge_into(total, contributions(doc, NEVER))
    (counts,) = total.values()
    assert counts["c.requests"] == counts["c.ok"] == 50
    assert counts["c.lat_n"] == 1 and counts[f"c.h.{_bucket(12.5)}"] == 1
    evidence = Evidence("cn1")
    for sid, c in total.items():
        evidence.apply(sid, c)
    arm = evidence.pooled("c")
    assert arm.waiting == 50 and arm.lat_n == 1
