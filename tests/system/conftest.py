"""Fixtures for tests against a deployed sandbox (scripts/system-tests sets the environment).

The tests talk to the stack as a client would, through nginx on the published loopback port, and
look at the host as an operator would, with `docker exec` (systemctl, journalctl, kill).
"""
from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests

# One realistic description per class, classified right by the shipped model.
EXAMPLES = {
    "maquiagem": "Batom líquido matte vermelho, longa duração, não transfere",
    "game": "Jogo para PlayStation 5 com modo multiplayer online e campanha de mundo aberto",
    "brinquedo": "Boneca articulada com acessórios e roupinhas, para crianças a partir de 3 anos",
    "livro": "Romance de ficção científica em capa dura, edição de colecionador, 480 páginas",
}


def _required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the system tests with scripts/system-tests", returncode=4)
    return value


@dataclass
class Sandbox:
    """The deployed container, seen by an operator."""

    name: str
    url: str

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "exec", self.name, *argv], capture_output=True, text=True,
                              check=check, timeout=timeout)

    def sh(self, script: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.run("sh", "-c", script, check=check, timeout=timeout)

    def main_pid(self, unit: str) -> int:
        return int(self.run("systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip())

    def child_pids(self, pid: int) -> list[int]:
        out = self.sh(f"cat /proc/{pid}/task/*/children").stdout
        return sorted(int(p) for p in out.split())

    def journal(self, *args: str) -> str:
        return self.run("journalctl", "--no-pager", "--output", "cat", *args).stdout

    def wait_until_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{self.url} not healthy after {timeout} s")


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    box = Sandbox(name=_required_env("SANDBOX_NAME"), url=_required_env("SANDBOX_URL").rstrip("/"))
    box.wait_until_healthy()
    return box


@pytest.fixture(scope="session")
def base_url(sandbox: Sandbox) -> str:
    return sandbox.url


@dataclass
class Load:
    """Steady load through nginx from a few threads, bounded in time and count.

    Each request classifies a known description; a failure is anything but a 200 with the
    right category (connection errors included).
    """

    url: str
    threads: int = 4
    max_seconds: float = 120
    max_requests: int = 200_000
    statuses: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    versions: Counter = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def _worker(self) -> None:
        session = requests.Session()
        items = list(EXAMPLES.items())
        deadline = time.monotonic() + self.max_seconds
        i = 0
        while not self._stop.is_set() and time.monotonic() < deadline and self.sent < self.max_requests:
            label, text = items[i % len(items)]
            i += 1
            try:
                r = session.post(f"{self.url}/api/predizer_categoria", json={"descricao": text}, timeout=10)
                status, body = r.status_code, (r.json() if r.headers.get("content-type", "").startswith("application/json") else None)
            except requests.RequestException as exc:
                status, body = type(exc).__name__, None
            with self._lock:
                self.statuses[status] += 1
                if status != 200 or not body or body.get("categoria") != label:
                    self.failures.append((time.monotonic(), status, body))
                elif body.get("versao_modelo"):
                    self.versions[body["versao_modelo"]] += 1

    def __enter__(self) -> "Load":
        self._threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.threads)]
        for t in self._threads:
            t.start()
        time.sleep(0.5)  # the load is running before the fault
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)  # and still running after it
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def report(self) -> str:
        return f"sent={self.sent} failed={len(self.failures)} statuses={dict(self.statuses)} first failures={self.failures[:5]}"


@pytest.fixture
def load(base_url: str):
    """`with load() as l: ...` then assert on l.failures."""
    def make(**kwargs) -> Load:
        return Load(url=base_url, **kwargs)
    return make
