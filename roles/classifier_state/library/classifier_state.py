#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module classifier_state: compares a host with the state the roles manage, in one run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: classifier_state
short_description: Compare a host with the state the classifier roles manage, in one run
description:
  - Reads, never changes. Each named group of checks lists what the host should have (files by
    checksum, owner and mode; directories; symlinks; systemd units enabled and active; Debian
    packages installed; users and groups; commands that must succeed; at most so many paths
    matching a glob; URLs that must answer a status). The module answers, per group, the list of
    differences.
  - The roles run it first and skip the tasks of a group that has none, so that a re-run with
    nothing to change costs one module run per host instead of one per task.
options:
  groups:
    description: >-
      Group name to its checks (keys files, directories, links, units, packages, users, groups,
      succeeds, at_most, answers).
    type: dict
    required: true
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
"""

RETURN = r"""
drift:
  description: Group name to the list of differences found (empty when the host matches).
  type: dict
  returned: always
"""

import glob
import grp
import hashlib
import os
import pwd
import shutil
import stat
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.error import HTTPError
from ansible.module_utils.urls import open_url


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


def _units(module, items):
    if not items:
        return
    names = [item["name"] for item in items]
    rc, out, err = module.run_command(
        ["systemctl", "show", "--property=Id,UnitFileState,ActiveState", *names])
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


def _packages(module, names):
    for name in names:
        rc, out, _ = module.run_command(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", name])
        if rc != 0 or not out.startswith("ii"):
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


def _succeeds(module, commands):
    for argv in commands:
        if shutil.which(argv[0]) is None:
            yield f"`{argv[0]}` not found"
            continue
        rc, out, err = module.run_command(argv)
        if rc != 0:
            last = (err.strip() or out.strip()).splitlines()[-1:] or [""]
            yield f"`{' '.join(argv)}` fails: {last[0]}"


def _at_most(items):
    for want in items:
        count = len(glob.glob(want["glob"]))
        if count > int(want["count"]):
            yield f"{count} paths match {want['glob']}, more than {want['count']}"


def _answers(items):
    """GET each URL from the host itself, once (no retries: the plan only reports). Certificates
    are not verified: a local check, and the certificate names the public host."""
    for want in items:
        status = int(want.get("status", 200))
        try:
            found = open_url(want["url"], method="GET", validate_certs=False, timeout=5,
                             follow_redirects="none").getcode()
        except HTTPError as exc:
            found = exc.code
        except Exception as exc:  # refused, timed out, TLS: all mean "not answering"
            yield f"GET {want['url']}: no answer ({exc})"
            continue
        if found != status:
            yield f"GET {want['url']}: status {found}, not {status}"


def check(module, checks):
    found = []
    found += _packages(module, checks.get("packages") or [])
    found += _groups(checks.get("groups") or [])
    found += _users(checks.get("users") or [])
    found += _directories(checks.get("directories") or [])
    found += _files(checks.get("files") or [])
    found += _links(checks.get("links") or [])
    found += _units(module, checks.get("units") or [])
    found += _succeeds(module, checks.get("succeeds") or [])
    found += _at_most(checks.get("at_most") or [])
    found += _answers(checks.get("answers") or [])
    return found


KNOWN = {"files", "directories", "links", "units", "packages", "users", "groups", "succeeds", "at_most",
         "answers"}


def main():
    module = AnsibleModule(argument_spec={"groups": {"type": "dict", "required": True}},
                           supports_check_mode=True)
    drift = {}
    for name, checks in module.params["groups"].items():
        unknown = set(checks or {}) - KNOWN
        if unknown:
            module.fail_json(msg=f"group {name}: unknown checks {sorted(unknown)}; known: {sorted(KNOWN)}")
        drift[name] = check(module, checks or {})
    module.exit_json(changed=False, drift=drift)


if __name__ == "__main__":
    main()
