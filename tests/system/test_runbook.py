"""docs/operations.md, run: the runbook's command blocks cannot drift from the deployment.

Each ```sh block in the runbook is preceded by an HTML comment saying how it is tested:

- `<!-- runbook-test -->`: a host command; run on the sandbox with `docker exec <container> sh -c`
  under `set -e`, it must exit 0.
- `<!-- runbook-test: under-load -->`: the same, while clients send requests through nginx; not
  one of them may fail (a restart is safe).
- `<!-- runbook-test: follow -->`: a command that follows a log; it must print and keep running.
- `<!-- runbook-test: rollback -->`: the manual rollback, back and forth to a second release made
  for the test, while clients send requests.
- `<!-- runbook-test: tls-file -->`, `<!-- runbook-test: tls-served -->`: TLS checks; the served
  one is skipped when the sandbox has no TLS.
- `<!-- runbook-test: controller -->`: controller commands; checked against the repository (shell
  syntax, playbooks and inventories that exist, variables that roles define, tags), not run.
- `<!-- runbook-test: controller-run -->`: checked the same way, then run from the repository root
  against the sandbox (`-i inventory` replaced by the system tests' inventory and variables); the
  rollback playbook back and forth to a second release, while clients send requests.
- `<!-- runbook-manual: <reason> -->`: deliberately not run (e.g. it deletes the live certificate).

Host blocks of one kind run in the runbook's order; the rollback puts the host back as it was.
Restart and rollback clients wait up to PATIENCE s (nginx itself gives up at 30 s with a 504).
"""
from __future__ import annotations

import os
import re
import shlex
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
KINDS = {"host", "under-load", "follow", "rollback", "tls-file", "tls-served", "controller",
         "controller-run", "manual"}
# The system tests' deployment, in place of the runbook's `-i inventory`.
SANDBOX_INVENTORY = ["-i", "sandbox/inventory.yml", "-e", "@tests/system/deploy-vars.yml"]
FOLLOW_SECONDS = 3
# What a command that went wrong prints on stderr, even where its exit status is lost (`cmd | tail`).
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
    # stderr only: stdout may be log lines that quote such words.
    signs = [sign for sign in FAILURE_SIGNS if sign in result.stderr]
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
        # A connection per request: what is measured is the restart, not a client reusing a
        # kept-alive connection at the moment the server side closes it.
        session.headers["Connection"] = "close"
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
    for kind in ("host", "under-load", "follow", "rollback", "controller", "controller-run"):
        assert of_kind(kind), f"no {kind} block"


def test_readme_links_the_runbook():
    assert "docs/operations.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_paths_in_the_table_exist_on_the_host(sandbox):
    table = TEXT.split("## Where everything lives", 1)[1].split("\n## ", 1)[0]
    # Not on every host: the certificate (TLS off) and `previous` (before a second release).
    paths = {p for p in re.findall(r"`(/[^`<…* ]+)`", table) if "ssl" not in p and "previous" not in p}
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


def link(sandbox, name: str) -> str:
    return sandbox.run("readlink", f"/opt/classifier/{name}", check=False).stdout.strip()


@pytest.fixture
def two_releases(sandbox):
    """A `previous` release to roll back to: a copy of the live one (its venv still runs the live
    one's Python). Yields (live, copy) as `releases/<id>`; puts back current and previous after."""
    live, old_previous = link(sandbox, "current"), link(sandbox, "previous")
    copy = f"{live}-runbook-test"
    sandbox.sh(f"cd /opt/classifier && cp -a {live} {copy} && ln -sfn {copy} previous")
    try:
        yield live, copy
    finally:
        restore = f"cd /opt/classifier && rm -f current.new previous.new && rm -rf {copy}"
        restore += f" && ln -sfn {old_previous} previous" if old_previous else " && rm -f previous"
        if link(sandbox, "current") != live:
            restore += f" && ln -sfn {live} current && systemctl restart classifier.service"
        sandbox.sh(restore)
        sandbox.wait_until_healthy()


def rollback_twice(sandbox, live: str, copy: str, run) -> None:
    """Back to the copy, then forward again, with clients sending requests all along."""
    for target, left in ((copy, live), (live, copy)):
        with Clients(sandbox.url, threads=2) as clients:
            run()
        assert (link(sandbox, "current"), link(sandbox, "previous")) == (target, left)
        assert not clients.lost, clients.report()
        sandbox.wait_until_healthy()


def test_manual_rollback_switches_release_without_losing_requests(sandbox, two_releases):
    (block,) = of_kind("rollback")
    live, copy = two_releases

    def run():
        result = run_block(sandbox, block)
        assert_ran(block, result)
        assert "rolling back from" in result.stdout, explain(block, result)

    rollback_twice(sandbox, live, copy, run)


def test_manual_rollback_without_previous_changes_nothing(sandbox):
    (block,) = of_kind("rollback")
    if link(sandbox, "previous"):
        pytest.skip("the sandbox has a previous release")
    live, before = link(sandbox, "current"), sandbox.main_pid("classifier.service")
    result = run_block(sandbox, block)
    assert result.returncode != 0, explain(block, result)
    assert link(sandbox, "current") == live
    assert sandbox.main_pid("classifier.service") == before


def test_rollback_playbook_block(sandbox, two_releases):
    (block,) = [b for b in of_kind("controller-run") if "playbooks/rollback.yml" in b.body]
    live, copy = two_releases
    rollback_twice(sandbox, live, copy, lambda: run_controller_block(sandbox, block))


# --- Controller blocks -----------------------------------------------------------------------


def role_variables() -> set[str]:
    names: set[str] = set()
    for f in ROOT.glob("roles/*/defaults/main.yml"):
        names |= set(re.findall(r"^(\w+):", f.read_text(), re.M))
    for f in ROOT.glob("roles/*/meta/argument_specs.yml"):
        names |= set(re.findall(r"^\s{6,}(classifier_\w+):", f.read_text(), re.M))
    return names


def all_tags() -> str:
    return "\n".join(p.read_text() for p in [*ROOT.glob("playbooks/*.yml"), *ROOT.glob("roles/*/tasks/*.yml")])


@pytest.mark.parametrize("block", params("controller", "controller-run"))
def test_controller_block_matches_the_repository(block):
    syntax = subprocess.run(["bash", "-n"], input=block.body, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    known, tags = role_variables(), all_tags()
    for line in block.body.splitlines():
        argv = shlex.split(line)
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
                    assert re.search(rf"tags: \[[^\]]*\b{re.escape(tag)}\b", tags), tag


def run_controller_block(sandbox, block: Block) -> None:
    """Each line, from the repository root, against the sandbox instead of `inventory`."""
    env = {**os.environ, "SANDBOX_NAME": sandbox.name, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1"}
    for line in block.body.splitlines():
        argv = shlex.split(line)
        if not argv:
            continue
        i = argv.index("-i")
        assert argv[i + 1] == "inventory", line
        argv[i:i + 2] = SANDBOX_INVENTORY
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (f"docs/operations.md:{block.line} {line}\n"
                                        f"{result.stdout[-4000:]}{result.stderr[-2000:]}")


@pytest.mark.parametrize("block", [b for b in params("controller-run") if "rollback.yml" not in b.values[0].body])
def test_controller_block_runs_against_the_sandbox(sandbox, block):
    run_controller_block(sandbox, block)
