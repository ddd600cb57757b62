"""Fixtures for the cluster tests, run by molecule/cluster's verify (it sets the environment)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import Load, broken_model, different_model, figures, print_figures, wait_healthy  # noqa: E402

WEB = "classifier-web"
APPS = ("classifier-app1", "classifier-app2")


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: the cluster tests run from `molecule test -s cluster`", returncode=4)
    return value


class Cluster:
    def __init__(self, url: str, inventory: str) -> None:
        self.url = url.rstrip("/")
        self.inventory = inventory

    @staticmethod
    def sh(host: str, script: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "exec", host, "sh", "-c", script], capture_output=True, text=True,
                              check=check, timeout=120)

    def app_version(self, host: str) -> str:
        """The model version an app host serves, asked on its own socket."""
        script = ("import http.client, json, socket\n"
                  "class C(http.client.HTTPConnection):\n"
                  "    def connect(self):\n"
                  "        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect('/run/classifier.sock')\n"
                  "c = C('localhost'); c.request('GET', '/health'); print(json.load(c.getresponse())['versao_modelo'])")
        return subprocess.run(["docker", "exec", host, "python3", "-c", script], capture_output=True, text=True,
                              check=True, timeout=60).stdout.strip()

    def release(self, host: str, link: str = "current") -> str:
        return Path(self.sh(host, f"readlink /opt/classifier/{link}").stdout.strip()).name

    def wait_healthy(self, timeout: float = 60) -> None:
        wait_healthy(self.url, timeout)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    box = Cluster(_env("CLUSTER_URL"), _env("CLUSTER_INVENTORY"))
    box.wait_healthy()
    return box


@pytest.fixture
def load(cluster):
    def make(**kwargs) -> Load:
        return Load(url=cluster.url, **kwargs)
    return make


@pytest.fixture(scope="session")
def new_model(tmp_path_factory) -> Path:
    return different_model(tmp_path_factory.mktemp("new-model"))


@pytest.fixture(scope="session")
def bad_model(tmp_path_factory) -> Path:
    return broken_model(tmp_path_factory.mktemp("bad-model"))


def summary(name: str, **values) -> None:
    """One line per test with its figures, for the closing note."""
    figures(name, **values)


def pytest_terminal_summary(terminalreporter) -> None:
    print_figures(terminalreporter)
