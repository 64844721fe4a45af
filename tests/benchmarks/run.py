"""`make bench`: every benchmark, one after another, each writing bench-results/<name>.json."""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback

BENCHMARKS = [
    "bench_spine",
    "bench_tabular",
    "bench_security",
    "bench_predict",
    "bench_kafka_floor",
    "bench_canary",
    "bench_lotto_models",
    "bench_lotto_api",
    "bench_rl",
    "bench_console",
]


def main(names: list[str]) -> int:
    failed = 0
    for name in names or BENCHMARKS:
        try:
            module = importlib.import_module(f"tests.benchmarks.{name}")
        except ModuleNotFoundError:
            print(f"{name}: not present, skipped")
            continue
        t0 = time.perf_counter()
        try:
            result = module.main()
            print(f"{name}: done in {time.perf_counter() - t0:.0f} s")
            print(json.dumps(result, indent=2, default=str)[:2000])
        except Exception:  # noqa: BLE001 - run the others, report at the end
            failed += 1
            traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
