"""classifier.service runs in a systemd sandbox, and still does its job.

- `systemd-analyze security` rates its exposure at MAX_EXPOSURE or less;
- the running processes really carry the sandbox (no capabilities, no_new_privs, a seccomp
  filter, a private /tmp, a read-only /usr and /opt, hidden processes);
- the app still classifies through nginx, and journald still gets its lines;
- it started clean: no error in the journal of the running service.

Run on Debian 12 and 13 (scripts/system-tests with SANDBOX_IMAGE=classifier-systemd:trixie).
"""
from __future__ import annotations

import re
import time
import uuid

import pytest
import requests

from conftest import EXAMPLES

UNIT = "classifier.service"
MAX_EXPOSURE = 2.0


@pytest.fixture(scope="module")
def os_name(sandbox) -> str:
    return sandbox.sh(". /etc/os-release && echo \"$PRETTY_NAME\"").stdout.strip()


def test_exposure_score(sandbox, os_name):
    out = sandbox.run("systemd-analyze", "security", "--no-pager", UNIT).stdout
    score = float(re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out).group(1))
    version = sandbox.run("systemctl", "--version").stdout.splitlines()[0]
    print(f"\n{os_name}, {version}: systemd-analyze security {UNIT}: exposure {score}")
    print("\n".join(line for line in out.splitlines() if line.startswith("✗")))
    assert score <= MAX_EXPOSURE, out


def _status(sandbox, pid: int) -> dict[str, str]:
    text = sandbox.sh(f"cat /proc/{pid}/status").stdout
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_processes_carry_the_sandbox(sandbox):
    master = sandbox.main_pid(UNIT)
    for pid in [master, *sandbox.child_pids(master)]:
        status = _status(sandbox, pid)
        assert status["NoNewPrivs"].strip() == "1", (pid, status["NoNewPrivs"])
        assert status["Seccomp"].strip() == "2", (pid, "no seccomp filter")
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(status[cap], 16) == 0, (pid, cap, status[cap])


def _mounts(sandbox, pid: int) -> dict[str, tuple[str, str, str]]:
    """Mount point -> (root within the file system, mount options, super options), as the
    process sees them (the last mount on a point wins)."""
    mounts = {}
    for line in sandbox.sh(f"cat /proc/{pid}/mountinfo").stdout.splitlines():
        left, right = line.split(" - ", 1)
        fields = left.split()
        mounts[fields[4]] = (fields[3], fields[5], right.split()[2])
    return mounts


def test_mount_namespace(sandbox):
    """What the service's own mount namespace looks like: / read-only (ProtectSystem=strict),
    its own /tmp (PrivateTmp), no /home (ProtectHome), a minimal read-only /dev (PrivateDevices),
    its own /proc showing its own processes only (ProtectProc=invisible, ProcSubset=pid)."""
    master = sandbox.main_pid(UNIT)
    for pid in [master, *sandbox.child_pids(master)]:
        mounts = _mounts(sandbox, pid)
        assert "ro" in mounts["/"][1].split(","), mounts["/"]
        assert "systemd-private-" in mounts["/tmp"][0] and UNIT in mounts["/tmp"][0], mounts["/tmp"]
        assert "inaccessible" in mounts["/home"][0], mounts["/home"]
        assert "ro" in mounts["/dev"][1].split(","), mounts["/dev"]
        proc = mounts["/proc"][2].split(",")
        assert "hidepid=invisible" in proc and "subset=pid" in proc, mounts["/proc"]


@pytest.mark.parametrize("label", sorted(EXAMPLES))
def test_still_classifies(base_url, label):
    r = requests.post(f"{base_url}/api/predizer_categoria", json={"descricao": EXAMPLES[label]}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["categoria"] == label


def test_journal_gets_the_lines(sandbox, base_url):
    rid = f"hardening-{uuid.uuid4().hex}"
    r = requests.post(f"{base_url}/api/predizer_categoria", json={"descricao": EXAMPLES["game"]},
                      headers={"X-Request-ID": rid}, timeout=10)
    assert r.status_code == 200
    deadline = time.monotonic() + 10
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = [line for line in sandbox.journal("-u", UNIT, "--since", "-5min").splitlines() if rid in line]
        if lines:
            break
        time.sleep(0.5)
    # The request's one line, written by the app, through journald.
    assert len(lines) == 1, lines
    assert "prediction" in lines[0] and "path=/predizer_categoria status=200" in lines[0], lines


def test_started_without_errors(sandbox):
    """The running service logged no error and no traceback since it started: nothing in its
    start-up trips over the sandbox (a read-only path, a filtered system call)."""
    invocation = sandbox.run("systemctl", "show", "-p", "InvocationID", "--value", UNIT).stdout.strip()
    log = sandbox.journal(f"_SYSTEMD_INVOCATION_ID={invocation}")
    assert "Booting worker" in log, "no lines of the running service found by its invocation id"
    bad = [line for line in log.splitlines()
           if re.search(r"\[(ERROR|CRITICAL)\]|^(ERROR|CRITICAL) |Traceback|PermissionError|"
                        r"Operation not permitted|Read-only file system", line)]
    assert not bad, "\n".join(bad[:20])
