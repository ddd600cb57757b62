"""docs/operations.md, run: the runbook's command blocks cannot drift from the deployment.

Each ```sh block in the runbook is preceded by an HTML comment saying how it is tested:

- `<!-- runbook-test -->`: a host command; run on the sandbox with `docker exec <container> sh -c`
  under `set -e`, it must exit 0.
- `<!-- runbook-test: under-load -->`: the same, while clients send requests through nginx; not
  one of them may fail (a restart is safe).
- `<!-- runbook-test: follow -->`: a command that follows a log; it must print and keep running.
- `<!-- runbook-test: rollback -->`: the rollback, run against a second release made for the test.
- `<!-- runbook-test: tls-file -->`, `<!-- runbook-test: tls-served -->`: TLS checks; the served
  one is skipped when the sandbox has no TLS.
- `<!-- runbook-test: controller -->`: controller commands; checked against the repository (shell
  syntax, playbooks and inventories that exist, variables that roles define), not run.
- `<!-- runbook-manual: <reason> -->`: deliberately not run (e.g. it deletes the live certificate).

Host blocks of one kind run in the runbook's order; the rollback puts the host back as it was.
Restart and rollback clients wait up to PATIENCE s (nginx itself gives up at 30 s with a 504).
"""
from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from conftest import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "operations.md"
BLOCK = re.compile(
    r"^<!-- (?P<marker>runbook-test|runbook-manual)(?::\s*(?P<kind>[^>]*?))?\s*-->\n"
    r"```(?P<lang>\w*)\n(?P<body>.*?)^```$",
    re.M | re.S,
)
KINDS = {"host", "under-load", "follow", "rollback", "tls-file", "tls-served", "controller", "manual"}
FOLLOW_SECONDS = 3
# What a command that went wrong prints, even where its exit status is lost (`cmd | tail`).
FAILURE_SIGNS = ("No such file", "not found", "Permission denied", "Traceback", "invalid option",
                 "unrecognized option", "syntax error", "Failed to")
# Longer than a restart takes, shorter than nginx's proxy_read_timeout (30 s, which answers 504):
# a request that waits through a restart is not lost.
PATIENCE = 29


@dataclass
class Block:
    kind: str
    body: str
    section: str
    line: int

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.kind}-{re.sub(r'[^a-z0-9]+', '-', self.section.lower()).strip('-')}"


def parse(text: str) -> list[Block]:
    blocks = []
    for m in BLOCK.finditer(text):
        headings = re.findall(r"^#+ (.+)$", text[:m.start()], re.M)
        kind = "manual" if m["marker"] == "runbook-manual" else (m["kind"] or "host").strip()
        blocks.append(Block(kind=kind, body=m["body"], section=headings[-1] if headings else "",
                            line=text.count("\n", 0, m.start()) + 2))
    return blocks


TEXT = RUNBOOK.read_text(encoding="utf-8")
BLOCKS = parse(TEXT)


def of_kind(*kinds: str) -> list[Block]:
    return [b for b in BLOCKS if b.kind in kinds]


def params(*kinds: str):
    return [pytest.param(b, id=b.id) for b in of_kind(*kinds)]


def run_block(sandbox, block: Block, timeout: float = 180) -> subprocess.CompletedProcess:
    return sandbox.run("sh", "-c", "set -e\n" + block.body, check=False, timeout=timeout)


def assert_ran(block: Block, result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, explain(block, result)
    signs = [sign for sign in FAILURE_SIGNS if sign in result.stdout + result.stderr]
    assert not signs, f"printed {signs}\n" + explain(block, result)


@dataclass
class Clients:
    """A few clients classifying through nginx while an intervention runs, each request waiting
    up to PATIENCE s. Bounded in time and count; any answer but 200 is a lost request."""

    url: str
    threads: int = 3
    max_seconds: float = 150
    max_requests: int = 20_000
    results: list = field(default_factory=list)  # (status or exception name, seconds)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _client(self) -> None:
        session = requests.Session()
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline and len(self.results) < self.max_requests:
            start = time.monotonic()
            try:
                status = session.post(f"{self.url}/api/predizer_categoria", json={"descricao": EXAMPLES["game"]},
                                      timeout=(5, PATIENCE)).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            self.results.append((status, time.monotonic() - start))

    def __enter__(self) -> "Clients":
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.threads)]
        for t in self._threads:
            t.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)
        self._stop.set()
        for t in self._threads:
            t.join(timeout=PATIENCE + 5)

    @property
    def lost(self) -> list:
        return [r for r in self.results if r[0] != 200]

    def report(self) -> str:
        slowest = max((s for _, s in self.results), default=0)
        return f"sent={len(self.results)} lost={self.lost[:5]} slowest={slowest:.1f}s"


def explain(block: Block, result: subprocess.CompletedProcess) -> str:
    return (f"runbook block at docs/operations.md:{block.line} ({block.section}) exited "
            f"{result.returncode}\n--- block\n{block.body}--- stdout\n{result.stdout[-3000:]}"
            f"--- stderr\n{result.stderr[-3000:]}")


# --- The runbook itself ----------------------------------------------------------------------


def test_every_shell_block_says_how_it_is_tested():
    fences = len(re.findall(r"^```sh$", TEXT, re.M))
    assert fences == len(BLOCKS), "a ```sh block without a runbook-test/runbook-manual comment before it"
    assert all(b.kind in KINDS for b in BLOCKS), sorted({b.kind for b in BLOCKS} - KINDS)
    assert all(b.kind != "manual" or b.body.strip() for b in BLOCKS)
    # The runbook covers what operators are asked about.
    for section in ("Where everything lives", "Check health", "Read and follow the logs",
                    "Follow one request by its id", "Restart", "Replace the model", "Add a host",
                    "Roll back", "Rotate the TLS certificate"):
        assert re.search(rf"^#+ {re.escape(section)}$", TEXT, re.M), section
    for kind in ("host", "under-load", "follow", "rollback", "controller"):
        assert of_kind(kind), f"no {kind} block"


def test_readme_links_the_runbook():
    assert "docs/operations.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_paths_in_the_table_exist_on_the_host(sandbox):
    table = TEXT.split("## Where everything lives", 1)[1].split("\n## ", 1)[0]
    paths = {p for p in re.findall(r"`(/[^`<…* ]+)`", table) if "ssl" not in p}
    assert len(paths) >= 10, paths
    missing = sandbox.sh(" ".join(f"test -e {p} || echo {p};" for p in sorted(paths))).stdout.split()
    assert not missing, f"paths the runbook names but the host lacks: {missing}"


# --- Host blocks -----------------------------------------------------------------------------


@pytest.mark.parametrize("block", params("host"))
def test_host_block(sandbox, block):
    assert_ran(block, run_block(sandbox, block))


@pytest.mark.parametrize("block", params("under-load"))
def test_block_under_load_loses_no_request(sandbox, block):
    before = sandbox.main_pid("classifier.service")
    with Clients(sandbox.url) as clients:
        result = run_block(sandbox, block)
        time.sleep(1)
    assert_ran(block, result)
    assert sandbox.main_pid("classifier.service") != before, "the service was not restarted"
    assert len(clients.results) > 10, clients.report()
    assert not clients.lost, clients.report()
    print(f"{block.id}: {clients.report()}")


@pytest.mark.parametrize("block", params("follow"))
def test_follow_block_keeps_following(sandbox, block):
    requests.get(f"{sandbox.url}/api/health", timeout=10)  # something to show
    result = sandbox.run("timeout", str(FOLLOW_SECONDS), "sh", "-c", block.body, check=False,
                         timeout=FOLLOW_SECONDS + 30)
    assert result.returncode == 124, f"stopped by itself before {FOLLOW_SECONDS} s\n" + explain(block, result)
    assert result.stdout.strip() and "No entries" not in result.stdout, explain(block, result)


@pytest.fixture
def tls_certificate(sandbox):
    """The certificate file the TLS checks read: the deployed one, or a throwaway made for the test."""
    path = "/etc/nginx/ssl/classifier.crt"
    if sandbox.run("test", "-e", path, check=False).returncode == 0:
        yield path
        return
    sandbox.sh("mkdir -p /tmp/runbook-ssl && openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
               "-subj /CN=runbook-test -addext subjectAltName=DNS:runbook-test "
               "-keyout /tmp/runbook-ssl/k -out /tmp/runbook-ssl/c 2>/dev/null")
    existed = sandbox.run("test", "-d", "/etc/nginx/ssl", check=False).returncode == 0
    sandbox.sh(f"mkdir -p /etc/nginx/ssl && cp /tmp/runbook-ssl/c {path}")
    try:
        yield path
    finally:
        sandbox.sh(f"rm -rf {path} /tmp/runbook-ssl" + ("" if existed else " && rmdir /etc/nginx/ssl"))


@pytest.mark.parametrize("block", params("tls-file"))
def test_tls_file_block(sandbox, tls_certificate, block):
    result = run_block(sandbox, block)
    assert_ran(block, result)
    assert "notAfter=" in result.stdout, explain(block, result)


@pytest.mark.parametrize("block", params("tls-served"))
def test_tls_served_block(sandbox, block):
    if sandbox.sh("grep -qs 'listen .*ssl' /etc/nginx/sites-enabled/default", check=False).returncode:
        pytest.skip("the sandbox serves no TLS (classifier_web_tls is off)")
    result = run_block(sandbox, block)
    assert_ran(block, result)
    assert "notAfter=" in result.stdout, explain(block, result)


# --- Rollback --------------------------------------------------------------------------------


def releases_newest_first(sandbox) -> list[str]:
    """The host's releases as `releases/<id>`, newest first (what the rollback block sorts by)."""
    out = sandbox.sh("cd /opt/classifier && stat -c '%Y %n' releases/*/").stdout
    stamped = [(int(t), name.rstrip("/")) for t, name in (line.split(" ", 1) for line in out.splitlines())]
    return [name for _, name in sorted(stamped, reverse=True)]


def current(sandbox) -> str:
    return sandbox.run("readlink", "/opt/classifier/current").stdout.strip()


def test_rollback_switches_release_without_losing_requests(sandbox):
    (block,) = of_kind("rollback")
    live = current(sandbox)
    fake = f"{live}-runbook-test"
    # The release "before" the live one: a copy of it (its venv still runs the live one's Python),
    # installed last, so the rollback picks it.
    sandbox.sh(f"cd /opt/classifier && cp -a {live} {fake} && touch {fake}")
    try:
        for hop in (1, 2):
            expected = [r for r in releases_newest_first(sandbox) if r != current(sandbox)][0]
            if hop == 1:
                assert expected == fake
            with Clients(sandbox.url, threads=2) as clients:
                result = run_block(sandbox, block)
            assert_ran(block, result)
            assert current(sandbox) == expected, explain(block, result)
            assert f"to {expected}" in result.stdout, explain(block, result)
            assert not clients.lost, clients.report()
            sandbox.wait_until_healthy()
    finally:
        if current(sandbox) != live:
            sandbox.sh(f"cd /opt/classifier && ln -sfn {live} current.new && mv -T current.new current "
                       "&& systemctl restart classifier.service")
        sandbox.sh(f"rm -rf /opt/classifier/{fake}")
    sandbox.wait_until_healthy()

    # With no other complete release it stops, and changes nothing.
    if releases_newest_first(sandbox) == [live]:
        before = sandbox.main_pid("classifier.service")
        result = run_block(sandbox, block)
        assert result.returncode != 0, explain(block, result)
        assert current(sandbox) == live
        assert sandbox.main_pid("classifier.service") == before


# --- Controller blocks -----------------------------------------------------------------------


def role_variables() -> set[str]:
    names: set[str] = set()
    for f in ROOT.glob("roles/*/defaults/main.yml"):
        names |= set(re.findall(r"^(\w+):", f.read_text(), re.M))
    for f in ROOT.glob("roles/*/meta/argument_specs.yml"):
        names |= set(re.findall(r"^\s{6,}(classifier_\w+):", f.read_text(), re.M))
    return names


@pytest.mark.parametrize("block", params("controller"))
def test_controller_block_matches_the_repository(block):
    syntax = subprocess.run(["bash", "-n"], input=block.body, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    known = role_variables()
    for line in block.body.splitlines():
        argv = line.split()
        if not argv:
            continue
        assert (ROOT / argv[0]).exists(), f"{argv[0]} does not exist in the repository"
        for i, arg in enumerate(argv):
            if arg == "-i":
                assert (ROOT / argv[i + 1]).exists(), argv[i + 1]
            elif arg.endswith(".yml"):
                assert (ROOT / arg).is_file(), arg
            elif arg == "-e":
                name = argv[i + 1].split("=", 1)[0]
                assert name in known, f"-e {name}: no role defines it"
            elif arg == "--tags":
                for tag in argv[i + 1].split(","):
                    assert re.search(rf"tags: \[[^\]]*\b{re.escape(tag)}\b", "\n".join(
                        p.read_text() for p in [*ROOT.glob("playbooks/*.yml"), *ROOT.glob("roles/*/tasks/*.yml")])), tag
