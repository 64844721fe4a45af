"""Seed 003 (Lotto 6/45) on the real stack: draws in, statistics, generation, backtests, ensemble
members trained through the job pipeline, monitoring, and the seed's curl / Python / JS clients.

The session stack loads the SYNTHETIC 1,200-draw demo history (rounds 1–1200, machines at random).
Hand-made draws of 1호기 are imported as rounds 9001–9003 so they are that machine's latest three."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_KEY, wait_for

HERE = Path(__file__).parent
INVALID_MACHINE_MESSAGE = "올바른 호기를 선택하세요. 가능한 값: 1호기, 2호기, 3호기"
BASELINE_3PLUS = 0.023834  # Σ_{k≥3} C(6,k)·C(39,6−k) / C(45,6)

# Hand-made 1호기 draws: B (1..6, AC 0), C (powers of two, AC 10), A (the reference set, AC 7)
HAND_CSV = (
    "drwNo,drwNoDate,drwtNo1,drwtNo2,drwtNo3,drwtNo4,drwtNo5,drwtNo6,bnusNo,machine_type\n"
    "9001,2025-09-06,1,2,3,4,5,6,7,1호기\n"
    "9002,2025-09-13,1,2,4,8,16,32,9,1호기\n"
    "9003,2025-09-20,3,5,13,20,21,37,1,1호기\n"
)


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == "error" and body["error"]["code"] == code, body
    assert body["request_id"] and body["timestamp"].endswith("Z")
    return body


@pytest.fixture(scope="module")
def hand_draws(api: httpx.Client) -> dict[str, Any]:
    """The hand-made draws, imported once as CSV with the official field names and a machine column."""
    resp = api.post("/api/draws", content=HAND_CSV.encode(), headers={"Content-Type": "text/csv"})
    assert resp.status_code == 201, resp.text
    return resp.json()


# ---------------------------------------------------------------------------------------------------------------
# the seed's clients, verbatim


SEED_PYTHON_SDK = """
import requests
from typing import List, Dict

class LotteryAPIClient:
    def __init__(self, base_url: str, api_key: str):
        self.base_url = base_url.rstrip('/')
        self.session = requests.Session()
        self.session.headers.update({
            'X-API-Key': api_key,
            'Content-Type': 'application/json'
        })

    def predict(self,
                machine_type: str,
                sets_count: int = 5,
                algorithm: str = "enhanced") -> Dict:
        \"\"\"번호 예측 요청\"\"\"
        response = self.session.post(
            f"{self.base_url}/api/predictions/generate",
            json={
                "machine_type": machine_type,
                "sets_count": sets_count,
                "algorithm": algorithm
            }
        )
        response.raise_for_status()
        return response.json()

    def get_statistics(self, machine_type: str, rounds: int = 50) -> Dict:
        \"\"\"통계 분석 조회\"\"\"
        response = self.session.get(
            f"{self.base_url}/api/statistics/machine-analysis/{machine_type}",
            params={"rounds": rounds}
        )
        response.raise_for_status()
        return response.json()

# 사용 예시
client = LotteryAPIClient("http://localhost:8000", "your-api-key")

# 1호기 예측 5줄 생성
result = client.predict("1호기", sets_count=5)
print(f"예측 결과: {result['predictions']}")

# 2호기 통계 분석
stats = client.get_statistics("2호기", rounds=100)
print(f"빈도 분석: {stats['number_frequency']}")
"""
"""Seed 003 "Python SDK" with its usage example, as printed (trailing spaces dropped); only the URL and the key
are substituted."""

SEED_CURL = """curl -X POST http://localhost:8000/api/predictions/generate \\
  -H "X-API-Key: test-key" \\
  -H "Content-Type: application/json" \\
  -d '{"machine_type": "1호기", "sets_count": 3}'"""

SEED_HEALTH_CURL = "curl http://localhost:8000/api/monitoring/health"


def _check_sets(body: dict[str, Any], machine_type: str, count: int) -> None:
    assert body["machine_type"] == machine_type
    assert body["request_id"].startswith("req_") and body["generated_at"].endswith("Z")
    assert list(body)[0] == "request_id" and list(body)[-1] == "generated_at"
    sets = [tuple(p["numbers"]) for p in body["predictions"]]
    assert len(sets) == count and len(set(sets)) == count
    for n, p in enumerate(body["predictions"], start=1):
        assert p["set_number"] == n
        assert list(p["numbers"]) == sorted(set(p["numbers"])) and len(p["numbers"]) == 6
        assert all(1 <= x <= 45 for x in p["numbers"])
        assert 0.0 <= p["confidence_score"] <= 1.0
        assert p["explanation"] and all(isinstance(line, str) and line for line in p["explanation"])
        assert any("당첨 확률 아님" in line for line in p["explanation"])


def test_seed_curl_and_python_client_verbatim(base_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("curl") and shutil.which("bash"):
        command = SEED_CURL.replace("http://localhost:8000", base_url).replace("test-key", TEST_KEY)
        out = subprocess.run(["bash", "-c", command + " -s"], capture_output=True, check=True, timeout=30)
        _check_sets(json.loads(out.stdout), "1호기", 3)
        command = SEED_HEALTH_CURL.replace("http://localhost:8000", base_url)
        health = json.loads(subprocess.run(["bash", "-c", command + " -s"], capture_output=True, check=True).stdout)
        assert health["status"] == "healthy" and health["components"]["database"]["status"] == "healthy"

    namespace: dict[str, Any] = {}
    exec(SEED_PYTHON_SDK.replace("http://localhost:8000", base_url).replace("your-api-key", TEST_KEY), namespace)
    printed = capsys.readouterr().out
    assert "예측 결과: [{" in printed and "빈도 분석: {'most_frequent'" in printed
    result, stats = namespace["result"], namespace["stats"]
    _check_sets(result, "1호기", 5)
    assert result["metadata"]["algorithm"] == "enhanced_ml_premium" and result["metadata"]["analysis_window"] == 50
    freq = stats["number_frequency"]
    assert len(freq["most_frequent"]) == 5 and len(freq["least_frequent"]) == 5
    assert math.isclose(sum(freq["frequency_distribution"].values()), 6.0, abs_tol=0.01)
    assert stats["analysis_period"]["total_rounds"] == 100
    assert stats["data_source"]["synthetic_draws"] == 100  # the demo history is labelled synthetic


def test_js_client_runs_unchanged(base_url: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    out = subprocess.run(
        [node, str(HERE / "lotto_client.js"), base_url, TEST_KEY], capture_output=True, timeout=60, text=True
    )
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    _check_sets(body["result"], "3호기", 10)
    assert all(p["algorithm_used"] == "enhanced_ml_creative_pattern_filtered" for p in body["result"]["predictions"])
    assert body["health"]["components"]["broker"]["status"] == "healthy"
    assert body["rejected"] == "API Error: 400"


# ---------------------------------------------------------------------------------------------------------------
# draws


def test_draw_import_csv_official_names(
    api: httpx.Client, db: Any, archive: Any, hand_draws: dict[str, Any]
) -> None:
    assert hand_draws["imported"] == 3 and hand_draws["by_machine"] == {"1호기": 3, "2호기": 0, "3호기": 0}
    listed = api.get("/api/draws", params={"machine_type": "1호기", "limit": 3}).json()
    assert [d["round"] for d in listed["draws"]] == [9003, 9002, 9001]
    assert listed["draws"][0] == {
        "round": 9003,
        "date": "2025-09-20",
        "numbers": [3, 5, 13, 20, 21, 37],
        "bonus": 1,
        "machine": 1,
        "machine_type": "1호기",
        "synthetic": False,
    }
    everything = api.get("/api/draws", params={"limit": 1}).json()
    assert everything["total"] >= 1203 and everything["synthetic_draws"] == 1200 and "synthetic" in everything["note"]
    # every draw is an event on lotto.draws first (the archive keeps it)
    event = wait_for(
        lambda: archive.find_one({"subject": "9003", "type": "modelbus.lotto.draw.recorded"}), what="draw event"
    )
    assert event["topic"] == "lotto.draws"
    # a single JSON record with our field names and the machine as a number
    one = api.post("/api/draws", json={"round": 9050, "date": "2025.10.04", "numbers": [45, 1, 30, 12, 7, 22],
                                       "bonus": 2, "machine": 3})  # fmt: skip
    assert one.status_code == 201, one.text
    got = db.lotto_draws.find_one({"_id": "9050"})
    assert got["numbers"] == [1, 7, 12, 22, 30, 45] and got["machine_type"] == "3호기" and got["date"] == "2025-10-04"


def test_draw_import_rejects_every_violation(api: httpx.Client, db: Any, hand_draws: dict[str, Any]) -> None:
    batch = {
        "draws": [
            {"round": 9101, "date": "2025-10-11", "numbers": [1, 2, 3, 4, 5, 6], "bonus": 7, "machine": "2호기"},
            {"round": 9101, "date": "2025-10-18", "numbers": [8, 9, 10, 11, 12, 13], "bonus": 7, "machine": 2},
            {"drwNo": 9102, "drwNoDate": "2025-10-25", "drwtNo1": 1, "drwtNo2": 2, "drwtNo3": 3, "drwtNo4": 4,
             "drwtNo5": 5, "drwtNo6": 46, "bnusNo": 7, "machine_type": "3호기"},
            {"round": 9103, "date": "2025-11-01", "numbers": [5, 5, 6, 7, 8, 9], "bonus": 1, "machine": "1"},
            {"round": 9001, "date": "2025-09-06", "numbers": [1, 2, 3, 4, 5, 6], "bonus": 7, "machine": "1호기"},
            {"round": 17, "date": "2003-03-29", "numbers": [1, 2, 3, 4, 5, 6], "bonus": 7, "machine": "1호기"},
            {"round": 9104, "date": "2025-11-08", "numbers": [1, 2, 3, 4, 5, 6], "bonus": 7, "machine": "4호기"},
        ]
    }  # fmt: skip
    body = _error(api.post("/api/draws", json=batch), 422, "INVALID_DRAWS")
    errors = body["error"]["details"]
    reasons = {(e["row"], e["field"]): e["reason"] for e in errors}
    assert "duplicate round 9101 within the batch" in reasons[(1, "round")]
    assert reasons[(2, ",".join(f"drwtNo{i}" for i in range(1, 7)))] == "numbers out of range 1-45: [46]"
    assert reasons[(3, "numbers")] == "repeated numbers: [5]"
    assert reasons[(4, "round")] == "duplicate round 9001: already recorded"
    assert reasons[(5, "round")] == "duplicate round 17: already recorded (synthetic demo draw)"
    assert reasons[(6, "machine")] == INVALID_MACHINE_MESSAGE
    assert body["error"]["invalid_count"] == 6 and body["error"]["rows_total"] == 7
    assert db.lotto_draws.find_one({"_id": "9101"}) is None  # all or nothing
    # CSV errors carry the line too
    csv_bad = 'round,date,numbers,bonus,machine\n9105,2025-11-15,"1 2 3 4 5 6",6,1호기\n'
    body = _error(api.post("/api/draws", content=csv_bad.encode(), headers={"Content-Type": "text/csv"}), 422,
                  "INVALID_DRAWS")  # fmt: skip
    assert body["error"]["details"][0]["line"] == 2 and "bonus 6 is among the numbers" in body["error"]["message"]
    _error(api.post("/api/draws", content=b"[{", headers={"Content-Type": "application/json"}), 400, "INVALID_JSON")
    _error(api.get("/api/draws", params={"machine_type": "9호기"}), 400, "INVALID_MACHINE_TYPE")


# ---------------------------------------------------------------------------------------------------------------
# statistics and backtests


def test_statistics_on_hand_made_draws(api: httpx.Client, hand_draws: dict[str, Any]) -> None:
    one = api.get("/api/statistics/machine-analysis/1호기", params={"rounds": 1}).json()
    assert one["analysis_period"] == {"total_rounds": 1, "start_round": 9003, "end_round": 9003}
    assert one["pattern_analysis"] == {
        "avg_odd_count": 5.0,
        "avg_even_count": 1.0,
        "avg_high_count": 1.0,
        "avg_low_count": 5.0,
        "avg_ac_value": 7.0,  # AC([3,5,13,20,21,37]) = 12 distinct differences − 5
        "avg_last_digit_sum": 19.0,
        "avg_total_sum": 99.0,
    }
    three = api.get("/api/statistics/machine-analysis/1%ED%98%B8%EA%B8%B0", params={"rounds": 3}).json()
    assert three["machine_type"] == "1호기"
    assert three["analysis_period"] == {"total_rounds": 3, "start_round": 9001, "end_round": 9003}
    assert three["requested_rounds"] == 3
    freq = three["number_frequency"]
    assert freq["most_frequent"] == [1, 2, 3, 4, 5]  # two appearances each, smaller first
    assert freq["least_frequent"] == [7, 9, 10, 11, 12]  # never drawn (bonus excluded)
    assert freq["frequency_distribution"]["1"] == 0.6667 and freq["frequency_distribution"]["37"] == 0.3333
    assert freq["frequency_distribution"]["7"] == 0.0 and len(freq["frequency_distribution"]) == 45
    assert three["pattern_analysis"] == {
        "avg_odd_count": 3.0,  # 3, 1, 5
        "avg_even_count": 3.0,
        "avg_high_count": 0.67,  # 0, 1, 1
        "avg_low_count": 5.33,
        "avg_ac_value": 5.67,  # 0, 10, 7
        "avg_last_digit_sum": 21.0,  # 21, 23, 19
        "avg_total_sum": 61.0,  # 21, 63, 99
    }
    perf = three["performance_metrics"]
    assert perf["rounds_evaluated"] == 3 and perf["mean_matches_random_baseline"] == 0.8
    assert perf["hit_rate_3plus_random_baseline"] == BASELINE_3PLUS
    assert perf["prediction_accuracy_random_baseline"] == 0.1333
    assert three["data_source"] == {"draws_analysed": 3, "synthetic_draws": 0, "real_draws": 3,
                                    "note": "imported draws"}  # fmt: skip
    assert three["random_baseline"]["avg_ac_value"] == pytest.approx(8.0632, abs=1e-4)
    # "1" is accepted too; rounds beyond the history analyse everything there is (documented behaviour)
    total = api.get("/api/draws", params={"machine_type": "1", "limit": 1}).json()["total"]
    every = api.get("/api/statistics/machine-analysis/1", params={"rounds": 10000}).json()
    assert every["analysis_period"]["total_rounds"] == total and every["requested_rounds"] == 10000
    assert every["analysis_period"]["end_round"] == 9003
    body = _error(api.get("/api/statistics/machine-analysis/4호기"), 400, "INVALID_MACHINE_TYPE")
    assert body["error"]["message"] == INVALID_MACHINE_MESSAGE and body["error"]["field"] == "machine_type"
    _error(api.get("/api/statistics/machine-analysis/1호기", params={"rounds": 0}), 422, "VALIDATION_ERROR")


def test_backtest_reproduces_random_baseline(api: httpx.Client) -> None:
    body = api.get("/api/statistics/backtest", params={"machine_type": "3호기", "algorithm": "basic", "rounds": 200})
    assert body.status_code == 200, body.text
    bt = body.json()
    assert bt["rounds_evaluated"] == 200 and bt["sets_evaluated"] == 1000 and bt["algorithm"] == "basic"
    assert bt["mean_matches_random_baseline"] == 0.8 and bt["hit_rate_3plus_random_baseline"] == BASELINE_3PLUS
    low, high = bt["mean_matches_ci95"]
    assert low <= 0.8 <= high and high - low < 0.2
    assert bt["hit_rate_3plus_ci95"][0] <= BASELINE_3PLUS <= bt["hit_rate_3plus_ci95"][1]
    assert bt["baseline_within_ci"] is True and sum(bt["match_histogram"].values()) == 1000
    test = bt["baseline_test"]  # one test at a stated level: the verdict above is its outcome
    assert test["level"] == 0.05 and test["p_value"] >= 0.05 and test["rejects_baseline"] is False
    assert math.isclose(sum(bt["match_histogram_random_baseline"].values()), 1.0, abs_tol=1e-5)
    enhanced = api.get("/api/statistics/backtest", params={"machine_type": "2", "rounds": 50}).json()
    assert enhanced["algorithm"] == "enhanced" and enhanced["rounds_evaluated"] == 50
    assert enhanced["confidence_correlation"] is None or -1 <= enhanced["confidence_correlation"] <= 1
    _error(api.get("/api/statistics/backtest", params={"machine_type": "3호기", "algorithm": "magic"}), 422,
           "VALIDATION_ERROR")  # fmt: skip
    _error(api.get("/api/statistics/backtest", params={"machine_type": "0호기"}), 400, "INVALID_MACHINE_TYPE")


# ---------------------------------------------------------------------------------------------------------------
# generation


def test_generation_sets_are_valid_distinct_and_follow_the_strategy(api: httpx.Client) -> None:
    for algorithm in ("basic", "enhanced", "premium"):
        for machine in ("1호기", "2호기", "3호기"):
            body = {"machine_type": machine, "sets_count": 20, "algorithm": algorithm, "analysis_window": 30}
            resp = api.post("/api/predictions/generate", json=body)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            _check_sets(body, machine, 20)
            expected = {
                "1호기": "enhanced_ml_premium",
                "2호기": "enhanced_ml_balanced",
                "3호기": "enhanced_ml_creative",
            }
            used = {p["algorithm_used"] for p in body["predictions"]}
            if algorithm == "basic":
                assert used == {"basic_uniform_random"} and {p["confidence_score"] for p in body["predictions"]}
            elif algorithm == "enhanced":
                assert used == {expected[machine]} and body["metadata"]["draws_analysed"] == 30
            else:
                assert used == {expected[machine] + "_pattern_filtered"}
            # the demo draws are uniform: the frequency model shows no held-out gain, so every score is 0.5
            evidence = body["metadata"]["confidence_evidence"]
            assert evidence["weight"] == 0.0 and {p["confidence_score"] for p in body["predictions"]} == {0.5}
    # 3호기: the explanation states the set's odd count; 2호기: its balance
    three = api.post("/api/predictions/generate", json={"machine_type": "3호기", "sets_count": 20}).json()
    for p in three["predictions"]:
        odd = sum(n % 2 for n in p["numbers"])
        assert any(line.endswith(f"이 세트의 홀수 {odd}개") for line in p["explanation"]), p
    two = api.post("/api/predictions/generate", json={"machine_type": "2호기", "sets_count": 20}).json()
    for p in two["predictions"]:
        odd = sum(n % 2 for n in p["numbers"])
        high = sum(n >= 23 for n in p["numbers"])
        assert any(f"이 세트: 홀 {odd}/짝 {6 - odd}, 고 {high}/저 {6 - high}" in line for line in p["explanation"])
    # 1호기 favours the hot numbers (the 14 most frequent of its last 50 draws): 200 sets hold clearly more of
    # them than uniform sets would (6·14/45 = 1.87 per set; the strategy gives about 2.4)
    window = api.get("/api/draws", params={"machine_type": "1호기", "limit": 50}).json()["draws"]
    counts = Counter(n for d in window for n in d["numbers"])
    hot = set(sorted(range(1, 46), key=lambda n: (-counts[n], n))[:14])
    held = []
    for _ in range(10):
        body = api.post("/api/predictions/generate", json={"machine_type": "1호기", "sets_count": 20}).json()
        for p in body["predictions"]:
            held.append(len(hot.intersection(p["numbers"])))
            assert any(line.endswith(f"이 세트의 고빈도 번호 {held[-1]}개") for line in p["explanation"])
    assert sum(held) / len(held) > 2.1, sum(held) / len(held)
    # validation: 422 for ranges, 400 for the machine (seed's message)
    gen = "/api/predictions/generate"
    _error(api.post(gen, json={"machine_type": "1호기", "sets_count": 21}), 422, "VALIDATION_ERROR")
    _error(api.post(gen, json={"machine_type": "1호기", "analysis_window": 9}), 422, "VALIDATION_ERROR")
    _error(api.post(gen, json={"machine_type": "1호기", "algorithm": "ultra"}), 422, "VALIDATION_ERROR")
    body = _error(api.post(gen, json={"machine_type": "4호기"}), 400, "INVALID_MACHINE_TYPE")
    assert body["error"]["message"] == INVALID_MACHINE_MESSAGE
    assert api.post(gen, json={"machine_type": 2, "sets_count": 1}).json()["machine_type"] == "2호기"


def test_machine_rule_matches_ml() -> None:
    from ml.lotto.draws import InvalidMachineType, parse_machine
    from schemas.lotto import parse_machine_type

    for value in ["1호기", "2", 3, " 3 호기 ", "1%ED%98%B8%EA%B8%B0", "2호", "4호기", "0", "", "호기", 1.0, True, None]:
        try:
            expected: int | None = parse_machine(value)  # type: ignore[arg-type]
        except (InvalidMachineType, TypeError):
            expected = None
        assert parse_machine_type(value) == expected, value


# ---------------------------------------------------------------------------------------------------------------
# ensemble members through the job pipeline


def _wait_lotto_job(api: httpx.Client, job_id: str, timeout: float = 150) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = api.get(f"/api/models/train/{job_id}").json()
        return body if body["status"] in ("completed", "failed", "cancelled") else None

    return wait_for(done, timeout, interval=0.5, what=f"lotto job {job_id}")


def test_ensemble_needs_trained_members(api: httpx.Client, db: Any) -> None:
    seed_body = {
        "machine_type": "2호기",
        "sets_count": 10,
        "ensemble_method": "weighted_voting",
        "models": ["pytorch_transformer", "sklearn_ensemble", "enhanced_predictor"],
    }
    body = _error(api.post("/api/ensemble/predictions/", json=seed_body), 409, "MODEL_NOT_TRAINED")
    assert body["error"]["missing_models"] == seed_body["models"]
    assert "POST /api/models/train" in body["error"]["message"] and "pytorch_transformer" in body["error"]["message"]
    assert {"machine_type": "2호기", "model_type": "sklearn_ensemble"} in body["error"]["train_requests"]
    # parameters are validated before a job is accepted
    bad = api.post("/api/models/train", json={"machine_type": "2호기", "model_type": "sklearn_ensemble",
                                              "parameters": {"n_estimator": 50}})  # fmt: skip
    assert _error(bad, 422, "VALIDATION_ERROR")["error"]["field"] == "parameters.n_estimator"
    _error(api.post("/api/models/train", json={"machine_type": "5호기", "model_type": "sklearn_ensemble"}), 400,
           "INVALID_MACHINE_TYPE")  # fmt: skip

    requests = [
        {"machine_type": "2호기", "model_type": "pytorch_transformer", "parameters": {"epochs": 3}},
        {"machine_type": "2호기", "model_type": "sklearn_ensemble", "parameters": {"n_estimators": 50}},
        {"machine_type": "2호기", "model_type": "enhanced_predictor"},
    ]
    accepted = []
    for req in requests:
        resp = api.post("/api/models/train", json=req)
        assert resp.status_code == 202, resp.text
        job = resp.json()
        assert job["status"] == "started" and job["machine_type"] == "2호기" and job["job_id"].startswith("job_")
        assert job["parameters"]["machine"] == 2 and job["draws"] >= 30
        assert api.get(f"/api/models/train/{job['job_id']}").json()["status"] in ("started", "running", "completed")
        accepted.append(job)
    finished = [_wait_lotto_job(api, job["job_id"]) for job in accepted]
    for job, req in zip(finished, requests, strict=True):
        assert job["status"] == "completed", job
        assert job["model_id"] == f"lotto_{req['model_type']}_m2_v1.1.0" and job["progress"] == 100
        assert job["metrics"]["holdout_log_loss_random_baseline"] == pytest.approx(0.392674, abs=1e-6)
        assert job["metrics"]["holdout_mean_hits_top6_random_baseline"] == 0.8
        assert job["baseline"]["mean_hits_top6"] == 0.8 and job["holdout"]["draws"] > 0
        evidence = job["confidence_evidence"]  # what weights this member's confidence_score
        assert evidence["held_out_draws"] == job["holdout"]["draws"] and 0.0 <= evidence["weight"] <= 1.0
    registry = api.get("/api/models", params={"machine_type": "2호기"}).json()["models"]
    assert {m["model_type"] for m in registry} == {r["model_type"] for r in requests}
    transformer = next(m for m in registry if m["model_type"] == "pytorch_transformer")
    assert transformer["model_name"] == "pytorch_transformer 2호기 v1.1.0"
    lineage = transformer["lineage"]
    assert lineage["machine"] == 2 and lineage["job_id"] == finished[0]["job_id"]
    assert lineage["hyperparameters"]["epochs"] == 3 and lineage["dataset"]["synthetic_draws"] > 0
    assert "torch" in lineage["library_versions"] and len(lineage["artifact_sha256"]) == 64
    stored = db["artifacts.files"].find_one({"filename": transformer["model_id"]})
    assert stored["metadata"]["sha256"] == transformer["artifact_sha256"]

    resp = api.post("/api/ensemble/predictions/", json=seed_body)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    _check_sets(body, "2호기", 10)
    meta = body["metadata"]
    assert meta["models"] == seed_body["models"] and math.isclose(sum(meta["model_weights"].values()), 1, abs_tol=1e-3)
    assert meta["model_ids"]["sklearn_ensemble"] == "lotto_sklearn_ensemble_m2_v1.1.0"
    assert all(0 <= p["confidence_score"] <= 1 for p in body["predictions"])
    assert meta["threshold_met"] == all(p["confidence_score"] >= 0.7 for p in body["predictions"])
    # chance-level members: a 0.7 bar cannot be reached, and the answer says so instead of hunting for extremes
    if meta["confidence_evidence"]["weight"] == 0.0:
        assert meta["threshold_reachable"] is False and meta["max_confidence_score"] == 0.5
        assert all(p["below_threshold"] and p["confidence_score"] == 0.5 for p in body["predictions"])
    for method in ("stacking", "blending"):
        request = {"machine_type": "2호기", "sets_count": 3, "ensemble_method": method, "confidence_threshold": 0.0}
        resp = api.post("/api/ensemble/predictions", json=request)
        assert resp.status_code == 200, resp.text
        assert resp.json()["metadata"]["ensemble_method"] == method and resp.json()["metadata"]["threshold_met"]
    _error(api.post("/api/ensemble/predictions/", json={**seed_body, "models": ["xgboost"]}), 422, "VALIDATION_ERROR")
    _error(api.post("/api/ensemble/predictions/", json={**seed_body, "machine_type": "3호기"}), 409,
           "MODEL_NOT_TRAINED")  # fmt: skip
    health = api.get("/api/monitoring/health").json()["components"]["ml_models"]
    assert "2호기" in health["models_loaded"] and health["models_registered"] >= 3 and health["last_prediction"]


# ---------------------------------------------------------------------------------------------------------------
# monitoring


def test_monitoring_metrics_are_measured(api: httpx.Client, anon: httpx.Client) -> None:
    before = api.get("/api/monitoring/metrics", params={"period": "1h"}).json()
    for sets in (2, 3, 4):
        assert (
            api.post("/api/predictions/generate", json={"machine_type": "1호기", "sets_count": sets}).status_code == 200
        )
    assert api.post("/api/predictions/generate", json={"machine_type": "7호기"}).status_code == 400

    def grown() -> dict[str, Any] | None:
        now = api.get("/api/monitoring/metrics", params={"period": "1h"}).json()
        done = now["ml_metrics"]["predictions_generated"] - before["ml_metrics"]["predictions_generated"] >= 9
        return now if done else None

    after = wait_for(grown, timeout=15, interval=0.3, what="generation metrics")
    req = after["request_metrics"]
    assert req["total_requests"] >= before["request_metrics"]["total_requests"] + 5
    assert req["failed_requests"] >= before["request_metrics"]["failed_requests"] + 1
    assert req["successful_requests"] + req["failed_requests"] == req["total_requests"]
    assert 0 < req["50th_percentile_ms"] <= req["95th_percentile_ms"] <= req["99th_percentile_ms"]
    assert req["avg_response_time_ms"] > 0
    routes = {(r["method"], r["path"]) for r in req["by_route"]}
    assert ("POST", "/api/predictions/generate") in routes
    ml = after["ml_metrics"]
    assert ml["predictions_generated"] - before["ml_metrics"]["predictions_generated"] == 9
    assert 0 < ml["avg_confidence_score"] < 1 and ml["generation_requests"] >= 3
    assert ml["model_accuracy"] is None or 0 <= ml["model_accuracy"] <= 1
    usage = after["resource_usage"]
    assert usage["memory_usage_mb"] > 0 and usage["cpu_usage_percent"] >= 0 and usage["cpu_cores"] >= 1
    assert after["period"]["duration_minutes"] == 60
    _error(api.get("/api/monitoring/metrics", params={"period": "forever"}), 422, "VALIDATION_ERROR")
    _error(anon.get("/api/monitoring/metrics"), 401, "UNAUTHORIZED")

    health = anon.get("/api/monitoring/health").json()  # open, like the seed's curl
    assert health["status"] == "healthy"
    for name in ("database", "broker", "ml_models", "cache"):
        component = health["components"][name]
        assert component["status"] == "healthy" and component["response_time_ms"] > 0, (name, component)
    assert health["components"]["cache"]["http_response_cache"] == "not_configured"
    assert health["performance"]["requests_per_minute"] > 0


def test_openapi_states_what_confidence_score_means(anon: httpx.Client) -> None:
    spec = anon.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("PredictionSet", "EnsembleSet"):
        description = schemas[name]["properties"]["confidence_score"]["description"]
        assert "0.5 = no different from a uniform random set" in description
        assert "NOT a chance of winning" in description
    threshold = schemas["EnsemblePredictionRequest"]["properties"]["confidence_threshold"]
    assert threshold["default"] == 0.7 and "same scale" in threshold["description"]
    generate = spec["paths"]["/api/predictions/generate"]["post"]["responses"]["200"]
    assert generate["content"]["application/json"]["schema"]["$ref"].endswith("/PredictionResponse")
