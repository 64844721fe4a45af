"""Sticky, monotone, SHA-256 based routing between the baseline and the canary arm."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from ml.canary.routing import bucket, canary_threshold, choose_arm

KEYS = [f"user-{i}" for i in range(10_000)]


def test_bucket_is_sha256_of_the_key_and_pinned() -> None:
    digest = hashlib.sha256(b"user-42").digest()
    assert bucket("user-42") == int.from_bytes(digest[:8], "big") % 10_000 == 5129
    assert bucket("txn-0001") == 8074
    assert bucket("user-42", salt="canary_xyz789") == 9336


def test_bucket_is_the_same_in_another_process_with_another_hash_seed() -> None:
    code = "from ml.canary.routing import bucket; print([bucket(f'k{i}') for i in range(50)])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str([bucket(f"k{i}") for i in range(50)])


@pytest.mark.parametrize("percentage", [10.0, 25.0, 50.0])
def test_same_key_same_arm_at_a_fixed_percentage(percentage: float) -> None:
    first = [choose_arm(key, percentage) for key in KEYS[:2000]]
    assert [choose_arm(key, percentage) for key in KEYS[:2000]] == first


def test_monotone_a_canary_key_stays_on_the_canary_when_the_percentage_rises() -> None:
    steps = [0.0, 1.0, 10.0, 12.5, 25.0, 50.0, 99.99, 100.0]
    for key in KEYS:
        arms = [choose_arm(key, p) for p in steps]
        first = arms.index("canary") if "canary" in arms else len(arms)
        assert arms == ["baseline"] * first + ["canary"] * (len(arms) - first), key


@pytest.mark.parametrize("percentage", [10.0, 25.0, 50.0])
def test_canary_share_over_10000_keys_is_within_3_points(percentage: float) -> None:
    share = 100.0 * sum(choose_arm(key, percentage) == "canary" for key in KEYS) / len(KEYS)
    assert abs(share - percentage) <= 3.0, share


def test_edges_and_validation() -> None:
    assert all(choose_arm(key, 0) == "baseline" for key in KEYS[:500])
    assert all(choose_arm(key, 100) == "canary" for key in KEYS[:500])
    assert canary_threshold(12.5) == 1250
    with pytest.raises(ValueError):
        choose_arm("k", 100.5)
    with pytest.raises(ValueError):
        choose_arm("k", -1)


def test_salt_reshuffles_which_keys_go_first() -> None:
    a = {key for key in KEYS if choose_arm(key, 10, salt="canary_a") == "canary"}
    b = {key for key in KEYS if choose_arm(key, 10, salt="canary_b") == "canary"}
    assert 800 <= len(a) <= 1200 and 800 <= len(b) <= 1200
    assert len(a & b) < 300  # independent draws overlap ~10 %, not ~100 %
