"""The deployed stack against its own OpenAPI document, through nginx, with schemathesis.

The document is the one the service serves (GET /api/openapi.json). schemathesis generates valid
and invalid requests for every operation (examples, coverage and fuzzing phases), with every
check on: no server error, and status, content type, headers and body as the document says.
Bounded: MAX_EXAMPLES per operation and phase, a fixed seed, one worker, a time limit, and a request rate
well under nginx's per-client limit, so this never turns into a load test (a 429 would still be
documented, hence accepted).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests

MAX_EXAMPLES = 100
SEED = 20260606
TIMEOUT_S = 600  # the whole run; without --max-time fuzzing stops at MAX_EXAMPLES
# Invalid data must be refused with a documented client error. schemathesis's default list lacks
# 413 (texts or batches over the limits) and 429 (nginx's rate limit).
CONFIG = """\
[checks.negative_data_rejection]
expected-statuses = [400, 404, 405, 413, 415, 429]
"""
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_document_is_served(base_url):
    r = requests.get(f"{base_url}/api/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    assert {"/predizer_categoria", "/health"} <= set(doc["paths"]), sorted(doc["paths"])


def test_schemathesis_against_the_deployed_stack(base_url, api_rate_limit, tmp_path):
    api_rate_limit.drain()
    rate = max(1, int(api_rate_limit.rate / 2)) if api_rate_limit.rate else 25
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    junit = tmp_path / "junit.xml"
    cmd = [
        str(SCHEMATHESIS), "--config-file", str(config), "run", f"{base_url}/api/openapi.json",
        "--url", f"{base_url}/api",
        "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--rate-limit", f"{rate}/s",
        "--request-timeout", "10",
        "--generation-database", "none",
        "--suppress-health-check", "all",
        "--no-color",
        "--report", "junit", "--report-junit-path", str(junit),
    ]
    print("\n" + " ".join(cmd))
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path)
    out = run.stdout + run.stderr
    print(out[-6000:])
    assert "test cases" in out or "Test cases" in out or "API Operations" in out, out[-3000:]
    assert run.returncode == 0, f"schemathesis exit {run.returncode}: see the output above"


def test_errors_documented_for_every_operation(base_url):
    """Every operation documents the errors nginx (429, 502, 503, 504) or the app (500; 400, 413,
    415 on a body) may answer it with."""
    doc = requests.get(f"{base_url}/api/openapi.json", timeout=10).json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in {"get", "post", "put", "delete", "patch"}:
                continue
            codes = set(op["responses"])
            expected = {"429", "500", "502", "503", "504"} | ({"400", "413", "415"} if method == "post" else set())
            missing = expected - codes
            assert not missing, f"{method.upper()} {path} lacks responses {sorted(missing)}: {json.dumps(sorted(codes))}"
