"""A redeploy with a new model on one host answers every request, and answers switch to it."""
from __future__ import annotations

import time

from harness import different_model, figures, run_playbook

INVENTORY = "sandbox/inventory.yml"


def test_redeploy_with_a_new_model_answers_every_request(sandbox, load, tmp_path):
    model = different_model(tmp_path / "model")
    before = sandbox.run("readlink", "/opt/classifier/current").stdout.strip()
    started = time.monotonic()
    with load() as traffic:
        result = run_playbook(INVENTORY, "site.yml", "-e", "@tests/system/deploy-vars.yml",
                              "-e", f"classifier_build_model={model}")
    seconds = round(time.monotonic() - started, 1)
    figures("single-host redeploy", seconds=seconds, sent=traffic.sent, failed=len(traffic.failures),
            versions=dict(traffic.versions))
    assert result.returncode == 0, result.stdout[-3000:]
    assert not traffic.failures, traffic.report()
    assert len(traffic.versions) == 2, traffic.report()  # the old model, then the new one
    after = sandbox.run("readlink", "/opt/classifier/current").stdout.strip()
    assert after != before
    assert sandbox.run("readlink", "/opt/classifier/previous").stdout.strip() == before

    # Back to the shipped model, so the tests after this one see the usual release.
    assert run_playbook(INVENTORY, "playbooks/rollback.yml").returncode == 0
    assert sandbox.run("readlink", "/opt/classifier/current").stdout.strip() == before

