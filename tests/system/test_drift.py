"""A re-run puts back what was changed by hand on an app host, and with nothing to change it
restarts nothing. The plan (roles/classifier_app/tasks/plan.yml) decides which hosts go through
the one-at-a-time switch: these tests fail if it misses drift or finds drift where there is none."""
from __future__ import annotations

import re

from harness import run_playbook

INVENTORY = "sandbox/inventory.yml"
VARS = ("-e", "@tests/system/deploy-vars.yml")
CONFIG = "/etc/classifier/gunicorn.conf.py"
SERVICE_UNIT = "/etc/systemd/system/classifier.service"
WEB_PLAN = "Say what the web play will do here"
PAGE, STYLE = "/var/www/classifier/index.html", "/var/www/classifier/form.css"
SITE_LINK = "/etc/nginx/sites-enabled/default"


def plan_of(stdout: str, task: str = "Say what the rollout will do here") -> str:
    """The message of a plan task: the app's ('the rollout') or the web's ('the web play')."""
    _, _, rest = stdout.partition(task)
    return " ".join(rest.partition("TASK [")[0].split())  # the message may wrap


def test_a_rerun_with_nothing_to_change_plans_nothing_and_restarts_nothing(sandbox):
    pid = sandbox.main_pid("classifier.service")
    result = run_playbook(INVENTORY, "site.yml", *VARS)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "nothing to change" in plan_of(result.stdout), result.stdout[-3000:]
    assert "nothing to change" in plan_of(result.stdout, WEB_PLAN), result.stdout[-3000:]
    changed = re.findall(r"^(\S+)\s*:.*\bchanged=(\d+)", result.stdout.rpartition("PLAY RECAP")[2], re.M)
    assert changed and all(count == "0" for _, count in changed), changed
    assert sandbox.main_pid("classifier.service") == pid


def test_a_rerun_repairs_changes_made_by_hand(sandbox):
    config = sandbox.run("cat", CONFIG).stdout
    sandbox.sh(f"echo 'workers = 9' >> {CONFIG}; chmod 0600 {SERVICE_UNIT}; "
               "systemctl disable --now classifier.socket classifier.service 2>/dev/null")
    result = run_playbook(INVENTORY, "site.yml", *VARS)
    assert result.returncode == 0, result.stdout[-3000:]
    plan = plan_of(result.stdout)
    for reason in (f"{CONFIG}: content differs", f"{SERVICE_UNIT}: mode 0600",
                   "classifier.socket: not enabled", "classifier.service: not active"):
        assert reason in plan, plan
    assert "/opt/classifier/current" not in plan, plan  # the release itself did not change
    assert sandbox.run("cat", CONFIG).stdout == config
    assert sandbox.run("stat", "-c", "%a", SERVICE_UNIT).stdout.strip() == "644"
    for unit in ("classifier.socket", "classifier.service"):
        assert sandbox.run("systemctl", "is-enabled", unit).stdout.strip() == "enabled"
        assert sandbox.run("systemctl", "is-active", unit).stdout.strip() == "active"
    sandbox.wait_until_healthy()


def test_a_rerun_repairs_the_web_site(sandbox):
    page = sandbox.run("cat", PAGE).stdout
    sandbox.sh(f"echo '<p>defaced</p>' >> {PAGE}; chmod 0600 {STYLE}; rm {SITE_LINK}; systemctl stop nginx")
    result = run_playbook(INVENTORY, "site.yml", *VARS)
    assert result.returncode == 0, result.stdout[-3000:]
    plan = plan_of(result.stdout, WEB_PLAN)
    for reason in (f"{PAGE}: content differs", f"{STYLE}: mode 0600", f"{SITE_LINK}: not a symlink",
                   "nginx.service: not active"):
        assert reason in plan, plan
    assert "nothing to change" in plan_of(result.stdout), result.stdout[-3000:]  # the app was not touched
    assert sandbox.run("cat", PAGE).stdout == page
    assert sandbox.run("stat", "-c", "%a", STYLE).stdout.strip() == "644"
    assert sandbox.run("readlink", SITE_LINK).stdout.strip() == "/etc/nginx/sites-available/default"
    assert sandbox.run("systemctl", "is-active", "nginx").stdout.strip() == "active"
    sandbox.wait_until_healthy()
