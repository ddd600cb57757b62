#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""classifier_state: compares a host with the state the roles manage, in one run.

This file is what runs on the host, and the documentation of the task. The action plugin of the
same name (action_plugins/classifier_state.py) sends this source to the host's Python in one
command with the request on stdin, and reads one JSON answer from stdout. It imports nothing
but the standard library: a regular module run starts AnsiballZ and compiles
ansible.module_utils on the host every time (about 0.3 CPU-s on a small host, the largest part
of what a re-run with nothing to change costs each host); this costs a bare Python start.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: classifier_state
short_description: Compare a host with the state the classifier roles manage, in one run
description:
  - Reads, never changes. Each named group of checks lists what the host should have (files by
    checksum, owner and mode; directories; symlinks; systemd units enabled and active; Debian
    packages installed; users and groups; commands that must succeed; at most so many paths
    matching a glob; URLs that must answer a status). The task answers, per group, the list of
    differences.
  - The roles run it first and skip the tasks of a group that has none, so that a re-run with
    nothing to change costs one run per host instead of one per task.
  - With O(platform), it also reads what the roles need to know of the host (Python,
    C library, architecture, default IPv4 address, IPv6) into the fact C(classifier_platform),
    instead of a run of the setup module.
  - Runs through an action plugin, as one command of the host's Python (no module transfer);
    supports check mode (it changes nothing either way).
options:
  groups:
    description: >-
      Group name to its checks (keys files, directories, links, units, packages, users, groups,
      succeeds, at_most, answers).
    type: dict
    default: {}
  platform:
    description: Also set the fact C(classifier_platform).
    type: bool
    default: false
author: product-classifier developers
"""

EXAMPLES = r"""
- name: Compare the host with what the role manages
  classifier_state:
    groups:
      site:
        packages: [nginx]
        files:
          - {path: /etc/nginx/sites-available/default, sha1: "{{ lookup('template', 'default.j2') | hash('sha1') }}",
             owner: root, group: root, mode: "0644"}
        links:
          - {path: /etc/nginx/sites-enabled/default, target: /etc/nginx/sites-available/default}
        units:
          - {name: nginx.service}
        succeeds:
          - [nginx, -t]
        answers:
          - {url: "http://127.0.0.1/api/health", status: 200}
  register: state

- name: Read the host's platform
  classifier_state:
    platform: true
"""

RETURN = r"""
drift:
  description: Group name to the list of differences found (empty when the host matches).
  type: dict
  returned: always
ansible_facts:
  description: >-
    With O(platform): C(classifier_platform) with C(python) (major.minor), C(python_executable),
    C(glibc), C(architecture), C(key) (the wheel platform, e.g. cp311-glibc2.36-x86_64),
    C(default_ipv4) (the address of the default route's interface, empty without one) and
    C(ipv6) (the host has an IPv6 address other than ::1).
  type: dict
  returned: when platform is true
"""

import glob
import grp
import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys

KNOWN = frozenset({"files", "directories", "links", "units", "packages", "users", "groups", "succeeds",
                   "at_most", "answers"})


def _run(argv):
    """rc, stdout, stderr of a command, in the C locale (the output is parsed)."""
    done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                          env={**os.environ, "LC_ALL": "C"}, check=False)
    return done.returncode, done.stdout, done.stderr


def _owner(st):
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return user, group


def _attributes(path, st, want):
    found = []
    user, group = _owner(st)
    if "owner" in want and user != want["owner"]:
        found.append(f"{path}: owner {user}, not {want['owner']}")
    if "group" in want and group != want["group"]:
        found.append(f"{path}: group {group}, not {want['group']}")
    if "mode" in want and f"{stat.S_IMODE(st.st_mode):04o}" != str(want["mode"]).zfill(4):
        found.append(f"{path}: mode {stat.S_IMODE(st.st_mode):04o}, not {want['mode']}")
    return found


def _sha1(path):
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _paths(items, is_kind, kind):
    """Each wanted path's lstat when it is of the kind, else the difference (as a str)."""
    for want in items:
        path = want["path"]
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            yield want, f"{path}: missing"
            continue
        yield want, (st if is_kind(st.st_mode) else f"{path}: not a {kind}")


def _files(items):
    for want, st in _paths(items, stat.S_ISREG, "regular file"):
        if isinstance(st, str):
            yield st
            continue
        if "sha1" in want and _sha1(want["path"]) != want["sha1"]:
            yield f"{want['path']}: content differs"
        yield from _attributes(want["path"], st, want)


def _directories(items):
    for want, st in _paths(items, stat.S_ISDIR, "directory"):
        yield from [st] if isinstance(st, str) else _attributes(want["path"], st, want)


def _links(items):
    for want in items:
        path = want["path"]
        if not os.path.islink(path):
            yield f"{path}: not a symlink"
        elif os.readlink(path) != want["target"]:
            yield f"{path}: points at {os.readlink(path)}, not {want['target']}"


def _units(items):
    if not items:
        return
    names = [item["name"] for item in items]
    rc, out, err = _run(["systemctl", "show", "--property=Id,UnitFileState,ActiveState", *names])
    if rc != 0:
        yield f"systemctl show failed: {err.strip()}"
        return
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
              for block in out.strip().split("\n\n")]
    for item, props in zip(items, blocks):
        if item.get("enabled", True) and props.get("UnitFileState") != "enabled":
            yield f"{item['name']}: not enabled ({props.get('UnitFileState') or 'no unit file'})"
        if item.get("active", True) and props.get("ActiveState") != "active":
            yield f"{item['name']}: not active ({props.get('ActiveState')})"


def _packages(names):
    if not names:
        return
    # One dpkg-query for all of them; a name dpkg does not know is left out of its output.
    _, out, _ = _run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *names])
    installed = {line.split()[0] for line in out.splitlines() if line.split()[1:2] == ["ii"]}
    for name in names:
        if name not in installed:
            yield f"package {name}: not installed"


def _users(items):
    for want in items:
        try:
            entry = pwd.getpwnam(want["name"])
        except KeyError:
            yield f"user {want['name']}: missing"
            continue
        if "group" in want:
            try:
                if grp.getgrnam(want["group"]).gr_gid != entry.pw_gid:
                    yield f"user {want['name']}: primary group is not {want['group']}"
            except KeyError:
                yield f"user {want['name']}: group {want['group']} missing"
        for key, field in (("shell", "pw_shell"), ("home", "pw_dir")):
            if key in want and getattr(entry, field) != want[key]:
                yield f"user {want['name']}: {key} {getattr(entry, field)}, not {want[key]}"


def _groups(names):
    for name in names:
        try:
            grp.getgrnam(name)
        except KeyError:
            yield f"group {name}: missing"


def _succeeds(commands):
    for argv in commands:
        if shutil.which(argv[0]) is None:
            yield f"`{argv[0]}` not found"
            continue
        rc, out, err = _run(argv)
        if rc != 0:
            last = (err.strip() or out.strip()).splitlines()[-1:] or [""]
            yield f"`{' '.join(argv)}` fails: {last[0]}"


def _at_most(items):
    for want in items:
        count = len(glob.glob(want["glob"]))
        if count > int(want["count"]):
            yield f"{count} paths match {want['glob']}, more than {want['count']}"


def _status(url):
    """The status of one GET, redirects not followed. Certificates are not verified: a local
    check, and the certificate names the public host."""
    import http.client  # only the web role asks: not paid by the others
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https":
        import ssl

        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=5,
                                                 context=ssl._create_unverified_context())
    elif parts.scheme == "http":
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    else:
        raise ValueError(f"unsupported scheme {parts.scheme!r}")
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else "") or "/")
        return connection.getresponse().status
    finally:
        connection.close()


def _answers(items):
    """GET each URL from the host itself, once (no retries: the plan only reports)."""
    for want in items:
        status = int(want.get("status", 200))
        try:
            found = _status(want["url"])
        except Exception as exc:  # refused, timed out, TLS: all mean "not answering"
            yield f"GET {want['url']}: no answer ({exc})"
            continue
        if found != status:
            yield f"GET {want['url']}: status {found}, not {status}"


def check(checks):
    found = []
    found += _packages(checks.get("packages") or [])
    found += _groups(checks.get("groups") or [])
    found += _users(checks.get("users") or [])
    found += _directories(checks.get("directories") or [])
    found += _files(checks.get("files") or [])
    found += _links(checks.get("links") or [])
    found += _units(checks.get("units") or [])
    found += _succeeds(checks.get("succeeds") or [])
    found += _at_most(checks.get("at_most") or [])
    found += _answers(checks.get("answers") or [])
    return found


def _default_ipv4():
    """The address of the interface the default IPv4 route leaves by ('' without one), read
    from /proc and the interface: no route lookup towards any outside address."""
    import fcntl
    import socket
    import struct

    try:
        with open("/proc/net/route", encoding="ascii") as routes:
            for line in routes.readlines()[1:]:
                fields = line.split()
                # Destination 0.0.0.0 with the route up (RTF_UP): the default route.
                if len(fields) > 3 and fields[1] == "00000000" and int(fields[3], 16) & 1:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                        request = struct.pack("256s", fields[0][:15].encode())
                        return socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, request)[20:24])  # SIOCGIFADDR
    except OSError:
        pass
    return ""


def _has_ipv6():
    """An IPv6 address other than ::1 (nginx cannot listen on [::] without IPv6 at all)."""
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as addresses:
            return any(line.split()[0] != "0" * 31 + "1" for line in addresses if line.strip())
    except OSError:
        return False


def platform():
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    glibc = (os.confstr("CS_GNU_LIBC_VERSION") or "glibc unknown").split()[-1]
    arch = os.uname().machine
    return {
        "python": python,
        "python_executable": sys.executable,
        "glibc": glibc,
        "architecture": arch,
        # Names the wheel and bundle directories of the build, e.g. cp311-glibc2.36-x86_64.
        "key": f"cp{python.replace('.', '')}-glibc{glibc}-{arch}",
        "default_ipv4": _default_ipv4(),
        "ipv6": _has_ipv6(),
    }


def answer(request):
    """The request as the action plugin sends it: {"groups": {...}, "platform": bool}."""
    groups = request.get("groups") or {}
    for name, checks in groups.items():
        unknown = set(checks or {}) - KNOWN
        if unknown:
            return {"failed": True, "msg": f"group {name}: unknown checks {sorted(unknown)}; known: {sorted(KNOWN)}"}
    result = {"changed": False, "drift": {name: check(checks or {}) for name, checks in groups.items()}}
    if request.get("platform"):
        result["ansible_facts"] = {"classifier_platform": platform()}
    return result


if __name__ == "__main__":
    json.dump(answer(json.load(sys.stdin)), sys.stdout)
