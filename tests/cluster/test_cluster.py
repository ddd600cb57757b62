"""The split topology under load: failover, a rolling redeploy, broken releases, rollback.

The tests run in this order and each leaves the cluster serving.
"""
from __future__ import annotations

import time

import requests

from conftest import APPS, WEB, summary
from harness import EXAMPLES, ROOT, copy_project, run_playbook


def test_requests_reach_both_app_hosts(cluster):
    for _ in range(40):
        r = requests.post(f"{cluster.url}/api/predizer_categoria", json={"descricao": EXAMPLES["livro"]}, timeout=10)
        assert r.status_code == 200
    log = cluster.sh(WEB, "tail -n 40 /var/log/nginx/access.log").stdout
    upstreams = {part.split("=", 1)[1] for line in log.splitlines() for part in line.split() if part.startswith("upstream=")}
    assert len(upstreams) == 2, upstreams


def test_stopping_gunicorn_on_one_app_host_costs_no_request(cluster, load):
    with load() as traffic:
        cluster.sh(APPS[0], "systemctl stop classifier.socket classifier.service")
        time.sleep(3)
        cluster.sh(APPS[0], "systemctl start classifier.socket classifier.service")
        time.sleep(2)
    summary("stop one app host", sent=traffic.sent, failed=len(traffic.failures))
    assert traffic.sent > 100, traffic.report()
    assert not traffic.failures, traffic.report()


def test_rolling_redeploy_answers_every_request(cluster, load, new_model):
    old = {host: cluster.app_version(host) for host in APPS}
    started = time.monotonic()
    with load() as traffic:
        result = run_playbook(cluster.inventory, "site.yml", "-e", f"classifier_build_model={new_model}")
    seconds = round(time.monotonic() - started, 1)
    assert result.returncode == 0, result.stdout[-3000:]
    new = {host: cluster.app_version(host) for host in APPS}
    summary("rolling redeploy", seconds=seconds, sent=traffic.sent, failed=len(traffic.failures),
            versions=dict(traffic.versions))
    assert not traffic.failures, traffic.report()
    assert len(set(new.values())) == 1 and set(new.values()).isdisjoint(old.values()), (old, new)
    # Answers switched to the new model while the load ran, and it answered last.
    assert set(traffic.versions) >= set(old.values()) | set(new.values()), traffic.report()
    assert traffic.last_version in new.values()


def test_rollback_returns_to_the_previous_release_and_back(cluster):
    serving = {host: cluster.release(host) for host in APPS}
    previous = {host: cluster.release(host, "previous") for host in APPS}

    result = run_playbook(cluster.inventory, "playbooks/rollback.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert {host: cluster.release(host) for host in APPS} == previous
    # The release it left is kept, as previous: a second rollback returns to it.
    assert {host: cluster.release(host, "previous") for host in APPS} == serving

    result = run_playbook(cluster.inventory, "playbooks/rollback.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert {host: cluster.release(host) for host in APPS} == serving


def test_rollback_to_an_unknown_release_fails_clearly(cluster):
    serving = {host: cluster.release(host) for host in APPS}
    result = run_playbook(cluster.inventory, "playbooks/rollback.yml", "-e", "classifier_app_rollback_to=nosuchrelease")
    assert result.returncode != 0
    assert "cannot roll back" in result.stdout and "nosuchrelease" in result.stdout, result.stdout[-3000:]
    assert {host: cluster.release(host) for host in APPS} == serving


def test_a_model_that_fails_the_gate_never_replaces_the_good_one(cluster, load, bad_model):
    serving = {host: cluster.release(host) for host in APPS}
    versions = {host: cluster.app_version(host) for host in APPS}
    with load() as traffic:
        result = run_playbook(cluster.inventory, "site.yml", "-e", f"classifier_build_model={bad_model}")
    summary("model failing the gate", sent=traffic.sent, failed=len(traffic.failures))
    assert result.returncode != 0
    # The message names the host, the release and the check that failed.
    assert f"{APPS[0]}: release" in result.stdout, result.stdout[-3000:]
    assert "smoke test" in result.stdout and "before taking any traffic" in result.stdout, result.stdout[-3000:]
    # The bad release never served: not one wrong answer, and neither host moved.
    assert {host: cluster.release(host) for host in APPS} == serving
    assert {host: cluster.app_version(host) for host in APPS} == versions
    assert not traffic.failures, traffic.report()


def test_an_app_that_does_not_start_never_replaces_the_good_one(cluster, load, tmp_path):
    serving = {host: cluster.release(host) for host in APPS}
    project = copy_project(tmp_path / "project")
    wsgi = project / "app" / "classifier" / "wsgi.py"
    wsgi.write_text('raise RuntimeError("a release that cannot start, on purpose")\n' + wsgi.read_text())
    with load() as traffic:
        # The repository's build cache: only the app's wheel is new.
        result = run_playbook(cluster.inventory, "site.yml", "-e", f"classifier_build_dir={ROOT / 'build'}",
                              project=project)
    summary("app that does not start", sent=traffic.sent, failed=len(traffic.failures))
    assert result.returncode != 0
    assert f"{APPS[0]}: release" in result.stdout, result.stdout[-3000:]
    assert "Start the new release on a private socket" in result.stdout and "still serves" in result.stdout, result.stdout[-3000:]
    assert {host: cluster.release(host) for host in APPS} == serving
    assert not traffic.failures, traffic.report()
