"""One request followed through the logs by its X-Request-ID.

nginx keeps a sane incoming X-Request-ID (letters, digits, `.`, `_`, `-`, at most 128) and makes
one ($request_id, 32 hex digits) otherwise; it passes the id to gunicorn and echoes it to the
client. The id is then found, on the host, in nginx's access log (`rid=<id>`, with the status,
the request time and the upstream time) and in the service's journal, in the app's line for the
request (`request_id=<id>`).
"""
from __future__ import annotations

import re
import time
import uuid

import pytest
import requests

from conftest import EXAMPLES

NGINX_ACCESS_LOG = "/var/log/nginx/access.log"
NGINX_ID = re.compile(r"[0-9a-f]{32}")  # nginx's $request_id
# nginx writes $request_time and $upstream_response_time as seconds with three decimals.
SECONDS = re.compile(r"(?<![\d.])\d+\.\d{3}(?![\d.])")
WAIT = 10  # seconds for a line to reach the log or the journal


def classify(base_url: str, headers: dict[str, str] | None = None) -> requests.Response:
    r = requests.post(f"{base_url}/api/predizer_categoria", json={"descricao": EXAMPLES["livro"]},
                      headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["categoria"] == "livro"
    return r


def echoed_id(r: requests.Response) -> str:
    """The response's X-Request-ID, which must be there exactly once."""
    values = r.raw.headers.getlist("X-Request-ID")
    assert len(values) == 1, f"expected one X-Request-ID header, got {values}"
    return values[0]


def lines_with(fetch, needle: str, count: int = 1) -> list[str]:
    """The lines of fetch() holding needle, waiting until there are at least count of them."""
    deadline = time.monotonic() + WAIT
    while True:
        lines = [line for line in fetch().splitlines() if needle in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.3)


def nginx_lines(sandbox, rid: str) -> list[str]:
    token = f"rid={rid}"
    lines = lines_with(lambda: sandbox.run("cat", NGINX_ACCESS_LOG).stdout, token)
    # rid=<id> as a whole field: not the prefix of a longer id.
    return [line for line in lines if re.search(re.escape(token) + r"(?=[\s\"]|$)", line)]


def journal_lines(sandbox, needle: str, count: int = 1) -> list[str]:
    return lines_with(lambda: sandbox.journal("--unit", "classifier.service"), needle, count)


def assert_in_nginx_log(sandbox, rid: str, path: str, status: int, upstream: bool = True) -> None:
    lines = nginx_lines(sandbox, rid)
    tail = sandbox.run("tail", "-n", "3", NGINX_ACCESS_LOG).stdout
    assert len(lines) == 1, f"rid={rid} in {NGINX_ACCESS_LOG}: {lines}; its last lines:\n{tail}"
    line = lines[0]
    assert path in line, line
    assert re.search(rf"(?:^|[\s=]){status}(?=\s|$)", line), f"status {status} not in: {line}"
    # The request time, and the upstream's when nginx asked gunicorn.
    assert len(SECONDS.findall(line)) >= (2 if upstream else 1), f"request/upstream times not in: {line}"


def assert_in_journal(sandbox, rid: str) -> None:
    lines = journal_lines(sandbox, f"request_id={rid} ")
    assert len(lines) == 1 and "prediction" in lines[0] and "categoria=livro" in lines[0] \
        and "path=/predizer_categoria status=200" in lines[0], \
        f"not one prediction line for request_id={rid} in the journal: {lines}"


def test_own_id_is_echoed_and_logged_by_nginx_gunicorn_and_the_app(sandbox, base_url):
    rid = f"systest-{uuid.uuid4().hex}"
    r = classify(base_url, {"X-Request-ID": rid})
    assert echoed_id(r) == rid
    assert_in_journal(sandbox, rid)
    assert_in_nginx_log(sandbox, rid, "/api/predizer_categoria", 200)


def test_longest_sane_id_is_kept(sandbox, base_url):
    rid = (uuid.uuid4().hex * 4)[:128]
    r = classify(base_url, {"X-Request-ID": rid})
    assert echoed_id(r) == rid
    assert_in_journal(sandbox, rid)


def test_request_without_id_gets_one_from_nginx(sandbox, base_url):
    r = classify(base_url)
    rid = echoed_id(r)
    assert NGINX_ID.fullmatch(rid), rid
    # The app would make a 32-hex id too: nginx's log tells whose id it is.
    assert_in_nginx_log(sandbox, rid, "/api/predizer_categoria", 200)
    assert_in_journal(sandbox, rid)


@pytest.mark.parametrize("kind", ["spaces", "200 chars", "separators"])
def test_invalid_id_is_replaced(sandbox, base_url, kind):
    marker = uuid.uuid4().hex
    given = {
        "spaces": f"bad id {marker}",
        "200 chars": (marker * 7)[:200],
        "separators": f"{marker};rid=forged,x",
    }[kind]
    r = classify(base_url, {"X-Request-ID": given})
    rid = echoed_id(r)
    assert NGINX_ID.fullmatch(rid), rid
    assert marker not in rid
    assert_in_nginx_log(sandbox, rid, "/api/predizer_categoria", 200)
    assert_in_journal(sandbox, rid)
    assert marker not in sandbox.journal("--unit", "classifier.service", "--since", "-2min")


def test_form_request_is_logged_by_nginx_with_its_id(sandbox, base_url):
    rid = f"form-{uuid.uuid4().hex}"
    r = requests.get(f"{base_url}/", headers={"X-Request-ID": rid}, timeout=10)
    assert r.status_code == 200
    assert echoed_id(r) == rid
    # No upstream for a static file: the request time only (urt=-).
    assert_in_nginx_log(sandbox, rid, "GET / ", 200, upstream=False)
