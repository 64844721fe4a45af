"""Console, part B: ``/ui/lotto``: per machine, how often each number was drawn beside the uniform expectation
(6/45 per draw, with its 95 % band for the number of draws analysed), the set patterns beside their exact
uniform expectations, and a rolling-origin backtest beside the random baseline with its interval.

The figures come from the serving workers over the same request/reply call as ``GET
/api/statistics/machine-analysis/{machine}`` (``api/lotto/routes.py``), whose ``performance_metrics`` is a
rolling-origin backtest of the ``enhanced`` generator over the same draws beside the exact random baseline: one
call per machine (each costs the worker about 1.4 s cold, docs/lotto.md).
Draws are uniform random: nothing here predicts a draw, and no score is a chance of winning (docs/lotto.md)."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any

from litestar import get
from litestar.params import Parameter
from litestar.response import Template

from api.console.session import ConsoleSession, render
from api.workers import call_worker
from ml.lotto.draws import MACHINES, NUMBER_MAX, NUMBERS_PER_DRAW
from producers.rpc import RpcClient
from schemas import lotto
from schemas.errors import ApiError

UNIFORM_SHARE = NUMBERS_PER_DRAW / NUMBER_MAX
"""expected appearances of a number per draw under uniform draws: 6/45"""
Z95 = 1.959963984540054
DEFAULT_ROUNDS = 100
NOTE = (
    "Draws are uniform random. These statistics describe past draws; they do not predict the next one, and no "
    "figure on this page is a chance of winning."
)


def uniform_band(draws: int) -> tuple[float, float]:
    """The central 95 % band of a number's share (appearances / draws) under uniform draws: each draw contains a
    given number with probability 6/45, so the share is a binomial proportion (normal approximation)."""
    if draws <= 0:
        return (0.0, 1.0)
    half = Z95 * math.sqrt(UNIFORM_SHARE * (1 - UNIFORM_SHARE) / draws)
    return (max(0.0, UNIFORM_SHARE - half), min(1.0, UNIFORM_SHARE + half))


def frequency_rows(distribution: dict[str, float], draws: int) -> dict[str, Any]:
    low, high = uniform_band(draws)
    numbers = list(range(1, NUMBER_MAX + 1))
    shares = [round(float(distribution.get(str(n), 0.0)), 4) for n in numbers]
    outside = [n for n, s in zip(numbers, shares, strict=True) if s < low or s > high]
    return {
        "numbers": numbers,
        "shares": shares,
        "expected": round(UNIFORM_SHARE, 4),
        "band": [round(low, 4), round(high, 4)],
        "outside": outside,
        "outside_expected": round(0.05 * NUMBER_MAX, 2),
    }


async def _machine(rpc: RpcClient, machine: int, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {"machine": machine, "label": f"machine {machine}"}
    try:
        analysis = await call_worker(
            rpc, lotto.LOTTO_STATISTICS, lotto.StatisticsBody(machine=machine, rounds=rounds), key=f"m{machine}"
        )
    except ApiError as exc:
        return out | {"error": f"{exc.code}: {exc.message}"}
    stats = analysis.model_dump(mode="json")
    period = stats.get("analysis_period") or {}
    draws = int(period.get("total_rounds") or 0)
    patterns = stats.get("pattern_analysis") or {}
    baseline = stats.get("random_baseline") or {}
    out |= {
        "period": period,
        "draws": draws,
        "frequency": frequency_rows((stats.get("number_frequency") or {}).get("frequency_distribution") or {}, draws),
        "patterns": [
            {"name": k, "observed": v, "expected": baseline.get(k)}
            for k, v in patterns.items()
            if isinstance(v, int | float)
        ],
        "data_source": stats.get("data_source") or {},
    }
    bt = stats.get("performance_metrics")  # the analysis's own backtest: None with fewer than two draws
    if bt:
        out["backtest"] = {
            **{
                k: bt.get(k)
                for k in (
                    "algorithm",
                    "rounds_evaluated",
                    "sets_evaluated",
                    "mean_matches",
                    "mean_matches_ci95",
                    "mean_matches_random_baseline",
                    "hit_rate_3plus",
                    "hit_rate_3plus_ci95",
                    "hit_rate_3plus_random_baseline",
                    "baseline_within_ci",
                    "prediction_accuracy",
                    "prediction_accuracy_random_baseline",
                )
            },
            "test": bt.get("baseline_test") or {},
        }
    return out


async def lotto_view(rpc: RpcClient, rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    machines = await asyncio.gather(*(_machine(rpc, m, rounds) for m in MACHINES))
    return {"machines": list(machines), "rounds": rounds, "note": NOTE, "expected": round(UNIFORM_SHARE, 4)}


# -- handlers -------------------------------------------------------------------------------------------------


@get("/lotto", name="console:lotto")
async def lotto_page(
    console: ConsoleSession, rpc: RpcClient, rounds: Annotated[int, Parameter(ge=10, le=2000)] = DEFAULT_ROUNDS
) -> Template:
    return render("lotto.html", console, "lotto", "Lotto", view=await lotto_view(rpc, rounds))


HANDLERS = [lotto_page]
