"""roles/classifier_state (library/ and action_plugins/): each kind of check finds its difference,
and finds none where the host matches (the roles skip their tasks on an empty answer)."""
from __future__ import annotations

import grp
import hashlib
import importlib.util
import ipaddress
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "classifier_state", ROOT / "roles" / "classifier_state" / "library" / "classifier_state.py")
state = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(state)

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def test_files(tmp_path):
    path = tmp_path / "conf"
    path.write_text("workers = 2\n")
    path.chmod(0o644)
    want = {"path": str(path), "sha1": hashlib.sha1(b"workers = 2\n").hexdigest(),
            "owner": ME, "group": MY_GROUP, "mode": "0644"}
    assert list(state._files([want])) == []
    path.write_text("workers = 9\n")
    path.chmod(0o600)
    assert list(state._files([want])) == [f"{path}: content differs", f"{path}: mode 0600, not 0644"]
    assert f"{path}: owner {ME}, not nobody" in list(state._files([{**want, "owner": "nobody"}]))
    assert list(state._files([{"path": str(tmp_path / "gone")}])) == [f"{tmp_path / 'gone'}: missing"]
    assert list(state._files([{"path": str(tmp_path)}])) == [f"{tmp_path}: not a regular file"]


def test_directories_and_links(tmp_path):
    (tmp_path / "releases" / "a").mkdir(parents=True)
    (tmp_path / "releases").chmod(0o755)
    os.symlink("releases/a", tmp_path / "current")
    assert list(state._directories([{"path": str(tmp_path / "releases"), "mode": "0755"}])) == []
    assert list(state._directories([{"path": str(tmp_path / "current"), "mode": "0755"}])) == [
        f"{tmp_path / 'current'}: not a directory"]
    assert list(state._links([{"path": str(tmp_path / "current"), "target": "releases/a"}])) == []
    assert list(state._links([{"path": str(tmp_path / "current"), "target": "releases/b"}])) == [
        f"{tmp_path / 'current'}: points at releases/a, not releases/b"]
    assert list(state._links([{"path": str(tmp_path / "releases"), "target": "x"}])) == [
        f"{tmp_path / 'releases'}: not a symlink"]


def test_users_groups_and_counts(tmp_path):
    me = pwd.getpwuid(os.getuid())
    assert list(state._users([{"name": ME, "group": MY_GROUP, "shell": me.pw_shell, "home": me.pw_dir}])) == []
    assert list(state._users([{"name": ME, "shell": "/no/such/shell"}])) == [
        f"user {ME}: shell {me.pw_shell}, not /no/such/shell"]
    assert list(state._users([{"name": "no-such-user-here"}])) == ["user no-such-user-here: missing"]
    assert list(state._groups([MY_GROUP, "no-such-group-here"])) == ["group no-such-group-here: missing"]
    for name in "abc":
        (tmp_path / name).mkdir()
        (tmp_path / name / ".installed").touch()
    pattern = str(tmp_path / "*" / ".installed")
    assert list(state._at_most([{"glob": pattern, "count": 3}])) == []
    assert list(state._at_most([{"glob": pattern, "count": 2}])) == [f"3 paths match {pattern}, more than 2"]


def test_answers():
    """A real HTTP server on a loopback port of this machine: each status as it comes, a port
    nothing listens on as no answer."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200 if self.path == "/health" else 502)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert list(state._answers([{"url": f"{base}/health"}])) == []
        assert list(state._answers([{"url": f"{base}/api", "status": 200}])) == [
            f"GET {base}/api: status 502, not 200"]
        assert list(state._answers([{"url": f"{base}/api", "status": 502}])) == []
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as s:  # a port free a moment ago
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    [found] = state._answers([{"url": f"http://127.0.0.1:{free}/"}])
    assert found.startswith(f"GET http://127.0.0.1:{free}/: no answer (")


def test_packages_in_one_query():
    """dpkg knows bash on any Debian; a name it does not know is reported, not an error."""
    assert list(state._packages(["bash"])) == []
    assert list(state._packages(["bash", "no-such-package-here"])) == ["package no-such-package-here: not installed"]


def test_answer_and_unknown_checks(tmp_path):
    """What the action plugin gets back: drift per group, or a failure naming the unknown check."""
    (tmp_path / "conf").write_text("x\n")
    answer = state.answer({"groups": {"here": {"files": [{"path": str(tmp_path / "conf")}]},
                                      "gone": {"files": [{"path": str(tmp_path / "gone")}]}}})
    assert answer == {"changed": False, "drift": {"here": [], "gone": [f"{tmp_path / 'gone'}: missing"]}}
    assert "ansible_facts" not in answer
    failed = state.answer({"groups": {"site": {"file": []}}})
    assert failed["failed"] is True and "group site: unknown checks ['file']" in failed["msg"]


def test_platform():
    """The fact that replaces the setup module: the same Python, C library and architecture the
    build keys its wheels by."""
    found = state.answer({"platform": True})["ansible_facts"]["classifier_platform"]
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    glibc = os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    assert found["python"] == python and found["python_executable"] == sys.executable
    assert found["glibc"] == glibc and found["architecture"] == os.uname().machine
    assert found["key"] == f"cp{python.replace('.', '')}-glibc{glibc}-{os.uname().machine}"
    assert isinstance(found["ipv6"], bool)


def test_default_ipv4_is_the_default_routes_interface():
    """Compared with iproute2's own answer for the default route's device, where this machine
    has both (Ansible's setup reads it the same way)."""
    if shutil.which("ip") is None:
        pytest.skip("no iproute2 here")
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "default"], capture_output=True,
                                       text=True, check=True).stdout or "[]")
    if not routes:
        assert state._default_ipv4() == ""
        return
    addresses = json.loads(subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", routes[0]["dev"]],
                                          capture_output=True, text=True, check=True).stdout)
    first = addresses[0]["addr_info"][0]["local"]
    assert state._default_ipv4() == first
    ipaddress.IPv4Address(first)


def test_action_plugin_through_ansible(tmp_path):
    """The action as the roles run it: ansible-playbook on this machine (connection local), the
    role's plugins loaded by the play. Drift, the platform fact, check mode, the inventory's
    interpreter, and a clear failure for a check it does not know."""
    (tmp_path / "conf").write_text("x\n")
    playbook = tmp_path / "play.yml"
    playbook.write_text(f"""
- hosts: localhost
  connection: local
  gather_facts: false
  roles: [classifier_state]
  tasks:
    - classifier_state:
        platform: true
        groups:
          here: {{files: [{{path: "{tmp_path / 'conf'}"}}]}}
          gone: {{files: [{{path: "{tmp_path / 'gone'}"}}]}}
    - classifier_state:
        groups: {{site: {{file: []}}}}
""")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    playbook_bin = str(Path(sys.executable).with_name("ansible-playbook"))
    for extra in ([], ["--check"], ["-e", f"ansible_python_interpreter={sys.executable}"]):
        run = subprocess.run([playbook_bin, "-i", "localhost,", str(playbook), *extra], capture_output=True,
                             text=True, env=env, cwd=tmp_path)
        assert run.returncode == 2, run.stdout + run.stderr  # the second task fails, as it should
        first, second = (task["hosts"]["localhost"] for task in json.loads(run.stdout)["plays"][0]["tasks"])
        assert first["drift"] == {"here": [], "gone": [f"{tmp_path / 'gone'}: missing"]}
        platform = first["ansible_facts"]["classifier_platform"]
        assert platform["key"].startswith("cp3")
        if extra[:1] == ["-e"]:
            assert platform["python_executable"] == sys.executable
        assert second["failed"] and "group site: unknown checks ['file']" in second["msg"]
