"""Fixtures for tests against a deployed sandbox (scripts/system-tests sets the environment).

The tests talk to the stack as a client would, through nginx on the published loopback port, and
look at the host as an operator would, with `docker exec` (systemctl, journalctl, kill).
"""
from __future__ import annotations

import os
import sys
import subprocess
import time
from dataclasses import dataclass

from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import EXAMPLES, Load, print_figures, wait_healthy  # noqa: E402,F401  (tests import EXAMPLES from here)


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
        wait_healthy(self.url, timeout)


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    box = Sandbox(name=_required_env("SANDBOX_NAME"), url=_required_env("SANDBOX_URL").rstrip("/"))
    box.wait_until_healthy()
    return box


@pytest.fixture(scope="session")
def base_url(sandbox: Sandbox) -> str:
    return sandbox.url


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


@pytest.fixture
def paced_load(base_url: str, api_rate_limit: RateLimit):
    """Like `load`, paced at 60 % of nginx's rate limit (40 requests/s when there is none):
    `with paced_load() as l: ...`."""
    def make(**kwargs) -> Load:
        kwargs.setdefault("rate", 0.6 * api_rate_limit.rate if api_rate_limit.rate else 40.0)
        return Load(url=base_url, **kwargs)
    return make


def pytest_terminal_summary(terminalreporter) -> None:
    print_figures(terminalreporter)
