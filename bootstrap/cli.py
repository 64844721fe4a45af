"""The ``modelbus`` command line (composition root: it wires the API, consumers and ml)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal
import sys
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

from infra.settings import Settings
from infra.telemetry import setup_logging, setup_tracing


def run_loop(main: Coroutine[Any, Any, None], settings: Settings) -> None:
    """Runs a long-lived process (``up``, ``worker``) on uvloop unless ``MODELBUS_EVENT_LOOP=asyncio``:
    the same code, with less CPU per Kafka fetch and per HTTP request."""
    if settings.event_loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


def settle_heap() -> None:
    """Once a long-lived process has started: its start-up objects (modules, models, the app; ~360k objects in
    the API process) move out of the garbage collector's reach (``gc.freeze``), and young collections run less
    often. Every full collection walked them all again: measured, validating and dumping a 1,000-record
    prediction took 8.5 ms with the default collector, 3.1 ms after this (tests/benchmarks/profile_predict.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 10)


GC_GEN0_THRESHOLD = 20_000
"""allocations between young collections (Python's default 700)"""


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = Path(args.data_dir)
    return Settings(**overrides)


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def cmd_up(args: argparse.Namespace) -> int:
    from bootstrap.stack import Stack

    settings = _settings(args)
    log_file = setup_logging(settings.log_level, settings.log_json, log_dir=settings.data_dir / "logs")
    setup_tracing()
    if log_file is not None:
        print(f"modelbus: the full JSON log is in {log_file}; warnings and errors show here", flush=True)

    async def main() -> None:
        stack = Stack(settings, demo=args.demo, progress=lambda line: print(f"  {line}", flush=True))
        waiter = asyncio.create_task(_until_signal())
        try:
            info = await stack.start()
            settle_heap()
            if stack.generated_key:
                print(f"API key (shown once, only its hash is stored): {stack.generated_key}", flush=True)
            where = "embedded" if info["embedded"] else "configured"
            print(
                f"modelbus ready at {info['api_url']} (kafka {info['kafka_bootstrap']}, mongodb {where}; "
                f"docs {info['api_url']}/docs)",
                flush=True,
            )
            print(f"  console: {info['api_url']}/ui (log in with the API key)", flush=True)
            if stack.demo_key:
                print(f"  API key (demo admin, every scope, enterprise tier): {stack.demo_key}", flush=True)
                print(f"  export KEY={stack.demo_key}", flush=True)
            await waiter
        finally:
            waiter.cancel()
            await stack.stop()
            print("modelbus stopped", flush=True)

    run_loop(main(), settings)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from bootstrap.wiring import ALL_ROLES
    from bootstrap.wiring import consumers as build_consumers

    settings = _settings(args).with_stack_file()
    setup_logging(settings.log_level, settings.log_json, log_dir=settings.data_dir / "logs")
    setup_tracing()

    roles = tuple(args.roles) if args.roles else ALL_ROLES

    async def main() -> None:
        consumers = build_consumers(settings, roles)
        await consumers.start()
        settle_heap()
        print(f"modelbus worker {consumers.worker_id} consuming from {settings.kafka_bootstrap}", flush=True)
        try:
            await _until_signal()
        finally:
            await consumers.stop()

    run_loop(main(), settings)
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from bootstrap.domains import install
    from schemas.topics import TOPICS

    install()

    settings = _settings(args)
    rows = [
        {
            "topic": settings.topic(name),
            "key": spec.key,
            "event_types": sorted(spec.payloads),
            "payloads": {t: m.__name__ for t, m in spec.payloads.items()},
            "description": spec.description,
        }
        for name, spec in TOPICS.items()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            types = ", ".join(f"{t} ({m})" for t, m in row["payloads"].items()) or "-"
            print(f"{row['topic']:<38} key={row['key']:<14} {row['description']}\n{'':<38} events: {types}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from bootstrap.replay import replay_stack

    settings = _settings(args).with_stack_file()
    if args.rebuild and args.since:
        print("--rebuild replaces the live projections and needs every event: drop --since", file=sys.stderr)
        return 2
    since = datetime.fromisoformat(args.since.replace("Z", "+00:00")) if args.since else None

    async def main() -> int:
        report = await replay_stack(settings, source=args.source, since=since, rebuild=args.rebuild)
        print(report.to_json())
        return 0 if report.identical else 1

    return asyncio.run(main())


def cmd_demo(args: argparse.Namespace) -> int:
    from bootstrap.demo import load_demo
    from infra import mongo

    settings = _settings(args).with_stack_file()

    async def main() -> None:
        client = mongo.client(settings)
        try:
            print(json.dumps(await load_demo(client[settings.mongodb_db], settings)))
        finally:
            await client.close()

    asyncio.run(main())
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from producers.canary.simulator import simulate
    from producers.client_commands import api_target

    url, api_key = api_target(_settings(args), args.url, args.api_key)
    if not api_key:
        print("give --api-key (or set MODELBUS_API_KEY; `make run` stacks are found by themselves)", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(
            simulate(
                url,
                api_key,
                args.scenario,
                canary_id=args.canary_id,
                shadow_id=args.shadow_id,
                rps=args.rps,
                duration_s=args.duration,
                label_delay_s=args.label_delay,
            )
        )
    except KeyboardInterrupt:
        print("stopped: interrupted", file=sys.stderr)
        return 130
    if not result["ok"]:
        return 1  # the simulator's last line said why, with the API's error code and message
    print(json.dumps({k: v for k, v in result.items() if k != "last_status"}))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from infra import keys, mongo

    settings = _settings(args).with_stack_file()

    async def main() -> None:
        client = mongo.client(settings)
        db = client[settings.mongodb_db]
        try:
            if args.action == "create":
                key = keys.generate_key()
                doc = await keys.store_key(db, key, name=args.name, tier=args.tier, scopes=tuple(args.scopes))
                print(
                    json.dumps(
                        {
                            "key": key,
                            "key_id": doc["_id"],
                            "tier": doc["tier"],
                            "scopes": doc["scopes"],
                            "note": "shown once; only its hash is stored",
                        }
                    )
                )
            elif args.action == "list":
                async for doc in db[mongo.API_KEYS].find({}, {"hash": 0}):
                    print(json.dumps(doc, default=str))
            else:
                res = await db[mongo.API_KEYS].update_one({"_id": args.key_id}, {"$set": {"revoked": True}})
                print(json.dumps({"key_id": args.key_id, "revoked": res.matched_count == 1}))
        finally:
            await client.close()

    asyncio.run(main())
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from infra import mongo
    from infra.users import create_user

    settings = _settings(args).with_stack_file()

    async def main() -> None:
        client = mongo.client(settings)
        try:
            doc = await create_user(
                client[settings.mongodb_db], args.username, args.password, tier=args.tier, scopes=tuple(args.scopes)
            )
            print(json.dumps({"username": doc["_id"], "tier": doc["tier"], "scopes": doc["scopes"]}))
        finally:
            await client.close()

    asyncio.run(main())
    return 0


def _target(args: argparse.Namespace) -> tuple[str, str | None]:
    from producers.client_commands import api_target

    return api_target(_settings(args), args.url, args.api_key)


def cmd_train(args: argparse.Namespace) -> int:
    from producers import client_commands as cc

    return cc.train(
        *_target(args),
        model_type=args.model_type,
        start_date=args.start_date,
        end_date=args.end_date,
        params=args.param,
        follow=args.follow,
    )


def cmd_jobs(args: argparse.Namespace) -> int:
    from producers import client_commands as cc

    return cc.jobs(*_target(args), status=args.status, limit=args.limit)


def cmd_models(args: argparse.Namespace) -> int:
    from producers import client_commands as cc

    return cc.models(*_target(args))


def cmd_deploy(args: argparse.Namespace) -> int:
    from producers import client_commands as cc

    target = getattr(args, "model_id", None) or getattr(args, "canary_id", None)
    return cc.deploy(*_target(args), args.action, target, percentage=getattr(args, "percentage", 10))


def cmd_canary_watch(args: argparse.Namespace) -> int:
    from producers import client_commands as cc

    return cc.canary_watch(*_target(args), args.canary_id, once=args.once)


def cmd_events_tail(args: argparse.Namespace) -> int:
    from producers import client_commands as cc

    return cc.events_tail(
        _settings(args),
        args.topic,
        event_type=args.type,
        subject=args.subject,
        from_beginning=args.from_beginning,
        max_events=args.max,
    )


def _add_client_parsers(sub: Any) -> None:
    """The client commands: they talk to a running API over HTTP (``events tail`` reads Kafka)."""
    http = argparse.ArgumentParser(add_help=False)
    http.add_argument("--url", help="API URL (default: stack.json of `modelbus up`, else MODELBUS_PUBLIC_URL/port)")
    http.add_argument("--api-key", help="API key (default MODELBUS_API_KEY, else the demo key of stack.json)")
    http.add_argument("--data-dir", help="where stack.json is (default .modelbus)")

    tr = sub.add_parser("train", parents=[http], help="start a training job (and follow it to the end)")
    tr.add_argument("--model-type", choices=["lightgbm", "isolation_forest"], required=True)
    tr.add_argument("--from", dest="start_date", required=True, help="first day, YYYY-MM-DD")
    tr.add_argument("--to", dest="end_date", required=True, help="last day (included), YYYY-MM-DD")
    tr.add_argument("--param", action="append", default=[], metavar="K=V", help="a hyperparameter (repeatable)")
    tr.add_argument("--follow", action="store_true", help="show progress until the job ends, then its metrics")
    tr.set_defaults(func=cmd_train)

    jb = sub.add_parser("jobs", parents=[http], help="training jobs, newest first")
    jb.add_argument("--status", choices=["started", "running", "completed", "failed", "cancelled"])
    jb.add_argument("--limit", type=int, default=10)
    jb.set_defaults(func=cmd_jobs)

    md = sub.add_parser("models", parents=[http], help="models in the registry")
    md.set_defaults(func=cmd_models)

    dp = sub.add_parser("deploy", help="deployment steps")
    dsub = dp.add_subparsers(dest="action", required=True)
    for name, helptext in (
        ("staging", "deploy a trained model to staging"),
        ("canary", "start a canary of a staged model"),
        ("promote", "promote a staged or canary model to production"),
    ):
        p = dsub.add_parser(name, parents=[http], help=helptext)
        p.add_argument("model_id")
        if name == "canary":
            p.add_argument("--percentage", type=float, default=10.0, help="initial traffic share in percent")
    rb = dsub.add_parser("rollback", parents=[http], help="end a canary without promoting it")
    rb.add_argument("canary_id")
    dsub.add_parser("emergency-rollback", parents=[http], help="restore the previous production model at once")
    dp.set_defaults(func=cmd_deploy)

    cn = sub.add_parser("canary", help="canary monitoring")
    csub = cn.add_subparsers(dest="what", required=True)
    cw = csub.add_parser("watch", parents=[http], help="both arms and the recommendation, every 2 s")
    cw.add_argument("canary_id", nargs="?", help="default: the running canary")
    cw.add_argument("--once", action="store_true", help="print one table and exit")
    cw.set_defaults(func=cmd_canary_watch)

    ev = sub.add_parser("events", help="events on Kafka")
    esub = ev.add_subparsers(dest="what", required=True)
    et = esub.add_parser("tail", help="print a topic's events as JSON lines (no consumer group)")
    et.add_argument("topic", help="short topic name, e.g. train.events (see `modelbus topics`)")
    et.add_argument("--type", help="an event type, or a prefix of whole dotted parts")
    et.add_argument("--subject", help="only events about this subject")
    et.add_argument("--from-beginning", action="store_true", help="from the oldest event (default: new ones only)")
    et.add_argument("--max", type=int, help="stop after this many printed events")
    et.add_argument("--data-dir", help="where stack.json is (default .modelbus)")
    et.set_defaults(func=cmd_events_tail)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelbus", description="modelbus: event-driven ML platform")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start everything (embedded Kafka and MongoDB unless configured)")
    up.add_argument("--port", type=int)
    up.add_argument("--data-dir")
    up.add_argument("--demo", action="store_true", help="load the synthetic demo data at start")
    up.set_defaults(func=cmd_up)

    worker = sub.add_parser("worker", help="one more consumer process against a running stack")
    worker.add_argument("--data-dir")
    worker.add_argument(
        "--roles",
        nargs="+",
        choices=["training", "serving", "projector", "archive", "ingest", "analyser"],
        help="run only these consumers (default: all)",
    )
    worker.set_defaults(func=cmd_worker)

    topics = sub.add_parser("topics", help="the topic catalog")
    topics.add_argument("--json", action="store_true")
    topics.set_defaults(func=cmd_topics)

    rep = sub.add_parser("replay", help="rebuild projections from the archive or Kafka and diff them")
    rep.add_argument("--from", dest="source", choices=["archive", "kafka"], default="archive")
    rep.add_argument("--since", help="ISO 8601 time; only events at or after it")
    rep.add_argument("--rebuild", action="store_true", help="write rebuilt documents over differing live ones")
    rep.add_argument("--data-dir")
    rep.set_defaults(func=cmd_replay)

    demo = sub.add_parser("demo", help="load the synthetic demo data into a running stack")
    demo.add_argument("--data-dir")
    demo.set_defaults(func=cmd_demo)

    sim = sub.add_parser("simulate", help="traffic simulators against a running stack")
    simsub = sim.add_subparsers(dest="what", required=True)
    can = simsub.add_parser(
        "canary",
        help="predictions and delayed feedback for the running canary (or shadow), within the key's rate limit",
    )
    can.add_argument("--scenario", choices=["better", "worse", "equal"], required=True)
    can.add_argument("--api-key", help="API key (default MODELBUS_API_KEY)")
    can.add_argument("--url", help="API URL (default: stack.json of `modelbus up`)")
    target = can.add_mutually_exclusive_group()
    target.add_argument("--canary-id", help="default: the running canary, else the running shadow")
    target.add_argument(
        "--shadow-id",
        help="a shadow deployment: the truth is drawn from production's predictions (what callers see), so the "
        "scenario's canary accuracy does not apply to the shadow",
    )
    can.add_argument("--rps", type=float, default=50.0, help="predictions per second")
    can.add_argument("--duration", type=float, default=300.0, help="seconds")
    can.add_argument("--label-delay", type=float, default=5.0, help="seconds before a label is sent")
    can.add_argument("--data-dir")
    can.set_defaults(func=cmd_simulate)

    k = sub.add_parser("keys", help="API keys")
    ksub = k.add_subparsers(dest="action", required=True)
    kc = ksub.add_parser("create")
    kc.add_argument("--name", default="cli")
    kc.add_argument("--tier", choices=["free", "premium", "enterprise"], default="free")
    kc.add_argument("--scopes", nargs="+", default=["read", "predict"])
    ksub.add_parser("list")
    kr = ksub.add_parser("revoke")
    kr.add_argument("key_id")
    for p in (kc, *ksub.choices.values()):
        with contextlib.suppress(argparse.ArgumentError):
            p.add_argument("--data-dir")
    k.set_defaults(func=cmd_keys)

    u = sub.add_parser("users", help="users for /auth/login")
    usub = u.add_subparsers(dest="action", required=True)
    uc = usub.add_parser("create")
    uc.add_argument("username")
    uc.add_argument("password")
    uc.add_argument("--tier", choices=["free", "premium", "enterprise"], default="free")
    uc.add_argument("--scopes", nargs="+", default=["read", "predict"])
    uc.add_argument("--data-dir")
    u.set_defaults(func=cmd_users)

    _add_client_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
