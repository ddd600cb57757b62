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


# --- Added for the bad-input, fault, OpenAPI and hardening tests (issue 6) -----------------------

@dataclass
class RateLimit:
    """nginx's per-client request limit on /api/ as deployed (rate 0: no limit)."""

    rate: float = 0.0  # requests per second
    burst: int = 0

    def pause(self, factor: float = 1.5) -> float:
        """Seconds between requests that keep one client well under the limit."""
        return factor / self.rate if self.rate else 0.0

    def drain(self) -> None:
        """Wait until the burst allowance has refilled after earlier tests."""
        if self.rate:
            time.sleep(self.burst / self.rate + 0.5)


@pytest.fixture(scope="session")
def api_rate_limit(sandbox: Sandbox) -> RateLimit:
    """Read the limit from the running nginx's configuration (`nginx -T`)."""
    import re

    test = sandbox.run("nginx", "-T", check=False)
    if test.returncode != 0:
        pytest.fail(f"nginx -T fails on the sandbox: its configuration on disk is broken: {test.stderr[-500:]}")
    conf = test.stdout
    zone = re.search(r"^\s*limit_req_zone\s.*\brate=(\d+)r/(s|m)", conf, re.M)
    if not zone:
        return RateLimit()
    rate = int(zone.group(1)) / (1 if zone.group(2) == "s" else 60)
    burst = re.search(r"^\s*limit_req\s.*\bburst=(\d+)", conf, re.M)
    return RateLimit(rate=rate, burst=int(burst.group(1)) if burst else 0)


@dataclass
class PacedLoad(Load):
    """`Load` that stays under nginx's per-client rate limit: at most `rate` requests per second
    from all its threads together (the threads still overlap, so requests are in flight at any
    moment). Same counting as `Load`: a 429 is a failure too. `keepalive=False` opens a new
    connection for every request (no race with a server closing an idle kept-alive one); a
    failure without an answer records the exception's text in place of the body."""

    rate: float = 30.0
    timeout: float = 10.0  # per request, as Load's
    keepalive: bool = True
    _next: float = 0.0

    def _wait_turn(self) -> None:
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + 1 / self.rate
        time.sleep(max(0.0, at - now))

    def _worker(self) -> None:
        session = requests.Session()
        if not self.keepalive:
            session.headers["Connection"] = "close"
        items = list(EXAMPLES.items())
        deadline = time.monotonic() + self.max_seconds
        i = 0
        while not self._stop.is_set() and time.monotonic() < deadline and self.sent < self.max_requests:
            self._wait_turn()
            label, text = items[i % len(items)]
            i += 1
            try:
                r = session.post(f"{self.url}/api/predizer_categoria", json={"descricao": text}, timeout=self.timeout)
                status, body = r.status_code, (r.json() if r.headers.get("content-type", "").startswith("application/json") else None)
            except requests.RequestException as exc:
                status, body = type(exc).__name__, {"exception": str(exc)[:200]}
            with self._lock:
                self.statuses[status] += 1
                if status != 200 or not body or body.get("categoria") != label:
                    self.failures.append((time.monotonic(), status, body))
                elif body.get("versao_modelo"):
                    self.versions[body["versao_modelo"]] += 1


@pytest.fixture
def paced_load(base_url: str, api_rate_limit: RateLimit):
    """Like `load`, paced at 60 % of nginx's rate limit (40 requests/s when there is none):
    `with paced_load() as l: ...`."""
    def make(**kwargs) -> PacedLoad:
        kwargs.setdefault("rate", 0.6 * api_rate_limit.rate if api_rate_limit.rate else 40.0)
        return PacedLoad(url=base_url, **kwargs)
    return make
