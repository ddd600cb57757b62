"""A corpus of bad input, sent through nginx as a hostile or broken client would.

Every case is written on a raw socket (no client library normalises the path, the headers or the
body) and the answer read with http.client. Whatever comes in:

- no 5xx, ever;
- under /api/, every error is the app's JSON shape ``{"erro": str, "status": int}`` with
  ``status`` equal to the HTTP status, nginx's own errors (405, 413, 414, 429, 400 ...) included;
- no file outside the static root is served;
- the gunicorn workers that were there before the corpus are the ones there after it (none died
  or was replaced on a timeout).

Requests are paced under nginx's per-client rate limit; one test floods on purpose for the 429.
"""
from __future__ import annotations

import http.client
import json
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from conftest import EXAMPLES

API = "/api/predizer_categoria"
JSON = {"Content-Type": "application/json"}
LABELS = set(EXAMPLES)
# Bytes that would show a file from outside the static root (or the repository) was served.
LEAKS = (b"root:x:0:0", b"root:*:", b"[core]", b"repositoryformatversion", b"daemon:x:")

SENT: Counter = Counter()  # statuses seen by the corpus, for the summary line


@dataclass
class Case:
    id: str
    expect: set[int]  # acceptable statuses
    method: str = "POST"
    target: str = API
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    body: bytes | None = None
    chunked: bool = False
    raw: bytes | None = None  # the whole request as sent, overriding everything above
    api: bool | None = None  # answered under /api/ (JSON errors); default: target starts /api/
    classifies: bool = False  # a 200 must carry a known categoria

    def __post_init__(self) -> None:
        if self.api is None:
            self.api = self.target.startswith("/api/")


def j(obj) -> bytes:
    return json.dumps(obj).encode()


def desc(text: str) -> bytes:
    """{"descricao": text} as UTF-8, non-ASCII kept as is."""
    return json.dumps({"descricao": text}, ensure_ascii=False).encode("utf-8")


MB = 1024 * 1024
NESTED = b"[" * 10_000 + b"]" * 10_000

CASES = [
    # --- malformed and truncated JSON -> 400 ---
    Case("json-empty-body", {400}, body=b""),
    Case("json-open-brace", {400}, body=b"{"),
    Case("json-key-only", {400}, body=b'{"descricao"'),
    Case("json-truncated-string", {400}, body=b'{"descricao": "Batom vermel'),
    Case("json-truncated-escape", {400}, body=b'{"descricao": "Batom \\u00'),
    Case("json-single-quotes", {400}, body=b"{'descricao': 'Batom vermelho'}"),
    Case("json-trailing-comma", {400}, body=b'{"descricao": "Batom vermelho",}'),
    Case("json-comment", {400}, body=b'{"descricao": "Batom" /* x */}'),
    Case("json-trailing-garbage", {400}, body=b'{"descricao": "Batom vermelho"} xyz'),
    Case("json-two-documents", {400}, body=b'{"descricao": "a"}{"descricao": "b"}'),
    Case("json-raw-newline-in-string", {400}, body=b'{"descricao": "Batom\nvermelho"}'),
    Case("json-bad-escape", {400}, body=b'{"descricao": "Batom \\x41"}'),
    Case("json-bare-word", {400}, body=b"descricao=Batom"),
    # --- wrong types at every level -> 400 ---
    Case("type-empty-object", {400}, body=b"{}"),
    Case("type-other-key", {400}, body=j({"descrição": "Batom vermelho"})),
    Case("type-descricao-int", {400}, body=j({"descricao": 42})),
    Case("type-descricao-float", {400}, body=j({"descricao": 4.2})),
    Case("type-descricao-nan", {400}, body=b'{"descricao": NaN}'),
    Case("type-descricao-huge-float", {400}, body=b'{"descricao": 1e999999}'),
    Case("type-descricao-5000-digit-int", {400}, body=b'{"descricao": ' + b"7" * 5000 + b"}"),
    Case("type-descricao-list", {400}, body=j({"descricao": ["Batom", "vermelho"]})),
    Case("type-descricao-object", {400}, body=j({"descricao": {"texto": "Batom"}})),
    Case("type-descricao-null", {400}, body=j({"descricao": None})),
    Case("type-descricao-true", {400}, body=j({"descricao": True})),
    Case("type-descricao-false", {400}, body=j({"descricao": False})),
    Case("type-descricao-empty", {400}, body=j({"descricao": ""})),
    Case("type-descricao-blank", {400}, body=j({"descricao": " \t\n\u00a0\u3000 "})),
    Case("type-top-array", {400}, body=j([{"descricao": "Batom vermelho"}])),
    Case("type-top-string", {400}, body=j("Batom vermelho")),
    Case("type-top-number", {400}, body=b"42"),
    Case("type-top-null", {400}, body=b"null"),
    Case("type-top-true", {400}, body=b"true"),
    # Duplicate keys: the last one wins; extra fields are ignored.
    Case("json-duplicate-key", {200, 400}, body=b'{"descricao": 1, "descricao": "Batom vermelho matte"}'),
    Case("json-extra-fields", {200}, body=j({"descricao": EXAMPLES["game"], "x": [1, {"y": None}]}),
         classifies=True),
    # --- deep nesting -> 400, not a crash ---
    Case("nested-10000-arrays", {400}, body=NESTED),
    Case("nested-10000-arrays-in-descricao", {400}, body=b'{"descricao": ' + NESTED + b"}"),
    Case("nested-10000-objects", {400}, body=b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
    # --- sizes ---
    Case("size-2mib-body", {413}, body=desc("a" * (2 * MB))),  # nginx: client_max_body_size
    Case("size-2mib-chunked", {413}, body=desc("a" * (2 * MB)), chunked=True),
    Case("size-content-length-lies-big", {413},
         raw=b"POST " + API.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 5000000\r\nConnection: close\r\n\r\n{}"),
    Case("size-just-under-1mib", {413}, body=desc("a" * (MB - 100))),  # the app's own body limit
    Case("size-descricao-20001-chars", {413}, body=desc("a" * 20_001)),  # MAX_DESCRIPTION_CHARS
    Case("size-descricao-20000-chars", {200}, body=desc(("batom vermelho " * 1400)[:20_000])),
    # --- wrong methods on the POST endpoint -> 405 ---
    Case("method-get", {405}, method="GET", body=None),
    Case("method-put", {405}, method="PUT", body=desc(EXAMPLES["livro"])),
    Case("method-delete", {405}, method="DELETE", body=None),
    Case("method-patch", {405}, method="PATCH", body=desc(EXAMPLES["livro"])),
    Case("method-trace", {405}, method="TRACE", body=None),  # nginx refuses TRACE itself
    Case("method-options", {200, 204}, method="OPTIONS", body=None),
    Case("method-get-health-ok", {200}, method="GET", target="/api/health", body=None),
    # --- content types -> 415 ---
    Case("ctype-text-plain", {415}, headers={"Content-Type": "text/plain"}, body=desc("Batom vermelho")),
    Case("ctype-form", {415}, headers={"Content-Type": "application/x-www-form-urlencoded"},
         body=b"descricao=Batom+vermelho"),
    Case("ctype-multipart", {415}, headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
         body=b'--XyZ\r\nContent-Disposition: form-data; name="descricao"\r\n\r\nBatom\r\n--XyZ--\r\n'),
    Case("ctype-missing", {415}, headers={}, body=desc("Batom vermelho")),
    Case("ctype-json-latin1-charset", {415}, headers={"Content-Type": "application/json; charset=latin-1"},
         body=desc("Batom vermelho")),
    Case("ctype-garbage", {415}, headers={"Content-Type": ";;;/==\x7f"}, body=desc("Batom vermelho")),
    Case("ctype-uppercase-json-ok", {200}, headers={"Content-Type": "APPLICATION/JSON"},
         body=desc(EXAMPLES["maquiagem"]), classifies=True),
    # --- encodings and unicode ---
    Case("enc-latin1-bytes", {400}, body='{"descricao": "Sabonete líquido, maçã"}'.encode("latin-1")),
    Case("enc-utf16-bom", {400}, body=b"\xff\xfe" + '{"descricao": "Batom"}'.encode("utf-16-le")),
    Case("enc-utf16-declared", {415}, headers={"Content-Type": "application/json; charset=utf-16"},
         body='{"descricao": "Batom"}'.encode("utf-16")),
    Case("enc-utf8-bom", {200, 400}, body=b"\xef\xbb\xbf" + desc("Batom vermelho")),
    Case("enc-overlong-utf8", {400}, body=b'{"descricao": "\xc0\xaf\xc0\xae"}'),
    Case("enc-raw-surrogate-bytes", {400}, body=b'{"descricao": "a\xed\xa0\x80b"}'),
    Case("enc-lone-surrogate-escaped", {200, 400}, body=b'{"descricao": "Batom \\ud800 vermelho"}'),
    Case("enc-reversed-surrogates", {200, 400}, body=b'{"descricao": "Batom \\udc00\\ud800"}'),
    Case("enc-nul-escaped", {200}, body=b'{"descricao": "Batom\\u0000 vermelho matte"}', classifies=True),
    Case("enc-nul-raw-byte", {400}, body=b'{"descricao": "Batom\x00 vermelho"}'),
    Case("uni-rtl-arabic-hebrew", {200}, body=desc("\u202eكتاب رواية עברית ספר\u202c"), classifies=True),
    Case("uni-emoji", {200}, body=desc("🎮🕹️ Jogo de videogame 👾 para console 🎲🧸"), classifies=True),
    Case("uni-combining-marks", {200}, body=desc("Batom li\u0301quido vermelho, longa durac\u0327a\u0303o"),
         classifies=True),
    Case("uni-zalgo", {200}, body=desc("B" + "\u0336\u0337\u0338" * 300 + "atom"), classifies=True),
    Case("uni-zero-width-and-bidi", {200}, body=desc("Li\u200bvro\u200d de \u2066poesia\u2069 \ufeff"),
         classifies=True),
    Case("uni-astral-cjk", {200}, body=desc("𠀀𠀁 书 本 漫画 第1巻"), classifies=True),
    Case("uni-noncharacters", {200}, body=desc("Boneca \uffff\ufffe \U0010ffff"), classifies=True),
    # --- unknown /api/ paths -> 404 ---
    Case("path-api-unknown", {404}, method="GET", target="/api/nao-existe", body=None),
    Case("path-api-root", {404}, method="GET", target="/api/", body=None),
    Case("path-api-endpoint-suffix", {404}, target=API + "/extra", body=desc("Batom")),
    Case("path-api-high-byte", {404}, method="GET", target="/api/%FF%FE", body=None),
    Case("path-api-encoded-nul", {400, 404}, method="GET", target="/api/a%00b", body=None),
    Case("path-api-uri-too-long", {414}, method="GET", target="/api/" + "a" * 10_000, body=None),
    # --- path traversal on the static root: nothing outside it ---
    Case("trav-dotdot", {400, 403, 404}, method="GET", target="/../../etc/passwd", body=None),
    Case("trav-encoded-dots", {400, 403, 404}, method="GET", target="/%2e%2e/%2e%2e/etc/passwd", body=None),
    Case("trav-encoded-dots-upper", {400, 403, 404}, method="GET", target="/%2E%2E/%2E%2E/etc/passwd",
         body=None),
    Case("trav-encoded-slashes", {400, 403, 404}, method="GET", target="/..%2f..%2f..%2fetc%2fpasswd",
         body=None),
    Case("trav-double-encoded", {400, 403, 404}, method="GET", target="/%252e%252e/%252e%252e/etc/passwd",
         body=None),
    Case("trav-backslashes", {400, 403, 404}, method="GET", target="/..\\..\\etc\\passwd", body=None),
    Case("trav-via-file", {400, 403, 404}, method="GET", target="/index.html/../../../etc/passwd",
         body=None),
    # /api/../ normalises to outside /api/: nginx refuses the path before any location.
    Case("trav-api-dotdot", {400, 403, 404}, method="GET", target="/api/../../etc/passwd", body=None,
         api=False),
    Case("trav-api-encoded-slashes", {400, 403, 404}, method="GET", target="/api/..%2f..%2fetc%2fpasswd",
         body=None, api=False),
    Case("trav-git-config", {403, 404}, method="GET", target="/.git/config", body=None),
    Case("trav-backup-file", {403, 404}, method="GET", target="/index.html~", body=None),
    Case("trav-absolute-uri", {400, 403, 404}, method="GET", target="http://x/../../etc/passwd", body=None),
    # --- oversized and broken headers: 4xx, never 5xx ---
    Case("hdr-64kib-header", {400, 431, 494}, method="GET", target="/api/health", body=None,
         headers={"X-Big": "a" * 65_536}),
    Case("hdr-64kib-header-static", {400, 431, 494}, method="GET", target="/", body=None,
         headers={"X-Big": "a" * 65_536}),
    Case("hdr-2000-headers", {400, 431, 494}, method="GET", target="/api/health", body=None,
         headers={f"X-H{i}": "v" * 40 for i in range(2000)}),
    Case("hdr-space-before-colon", {400},
         raw=b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Bad : 1\r\nConnection: close\r\n\r\n", api=True),
    Case("hdr-cl-and-te", {400},
         raw=b"POST " + API.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
         api=True),
    Case("hdr-bad-content-length", {400},
         raw=b"POST " + API.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: -5\r\nConnection: close\r\n\r\n", api=True),
    Case("hdr-del-byte-in-other-header", {200, 400}, method="GET", target="/api/health", body=None,
         headers={"X-Forwarded-For": "1.2.3.4\x7f", "X-Junk": "a\x01b\x7fc"}),
    Case("hdr-no-host-http11", {400}, raw=b"GET /api/health HTTP/1.1\r\nConnection: close\r\n\r\n", api=True),
]


def _request_bytes(case: Case, host: str) -> bytes:
    if case.raw is not None:
        return case.raw
    headers = {"Host": host, **case.headers, "Connection": "close"}
    body = case.body
    if body is not None:
        if case.chunked:
            headers["Transfer-Encoding"] = "chunked"
            step = 64 * 1024
            body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step])
                            for i in range(0, len(body), step)) + b"0\r\n\r\n"
        else:
            headers["Content-Length"] = str(len(body))
    head = f"{case.method} {case.target} HTTP/1.1\r\n".encode("latin-1")
    head += b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())
    return head + b"\r\n" + (body or b"")


def send(base_url: str, case: Case, timeout: float = 20) -> tuple[int, dict[str, str], bytes]:
    """Write the request as is; read the answer even if nginx answered before the body was sent."""
    url = urlsplit(base_url)
    data = _request_bytes(case, url.netloc)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # nginx may refuse (413) and close before the whole body is written
        resp = http.client.HTTPResponse(sock, method=case.method)
        resp.begin()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


@pytest.fixture(scope="module")
def workers_before(sandbox, api_rate_limit):
    """The gunicorn master and workers before the corpus; the clean slate of the rate limit."""
    api_rate_limit.drain()
    master = sandbox.main_pid("classifier.service")
    since = sandbox.run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
    return master, sandbox.child_pids(master), since


def check_api_error(status: int, headers: dict[str, str], body: bytes) -> None:
    assert headers.get("content-type", "").split(";")[0].strip() == "application/json", (
        f"{status} under /api/ is not JSON: {headers.get('content-type')!r} {body[:200]!r}")
    doc = json.loads(body)
    assert isinstance(doc, dict) and set(doc) == {"erro", "status"}, doc
    assert isinstance(doc["erro"], str) and doc["erro"].strip(), doc
    assert doc["status"] == status and type(doc["status"]) is int, doc


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(base_url, workers_before, api_rate_limit, case):
    time.sleep(api_rate_limit.pause())
    status, headers, body = send(base_url, case)
    SENT[status] += 1
    assert status < 500, f"{case.id}: server error {status}: {body[:300]!r}"
    for leak in LEAKS:
        assert leak not in body, f"{case.id}: served a file from outside the root ({leak!r})"
    if case.api and status >= 400:
        check_api_error(status, headers, body)
    assert status in case.expect, f"{case.id}: {status} not in {sorted(case.expect)}: {body[:300]!r}"
    if case.classifies and status == 200:
        assert json.loads(body)["categoria"] in LABELS, body


def test_rate_limit_answers_json_429(base_url, workers_before, api_rate_limit):
    """Flood /api/health past rate + burst: nginx answers 429 in the JSON shape, nothing else fails."""
    if not api_rate_limit.rate:
        pytest.skip("no rate limit on /api/ in the deployed nginx")
    n = int(api_rate_limit.burst + 2 * api_rate_limit.rate + 50)
    case = Case("flood", {200, 429}, method="GET", target="/api/health", body=None)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: send(base_url, case), range(n)))
    statuses = Counter(status for status, _, _ in answers)
    SENT.update(statuses)
    print(f"\nflood: {n} requests to /api/health, statuses {dict(statuses)}")
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[429] > 0, f"no 429 after {n} requests at once: {statuses}"
    for status, headers, body in answers:
        if status == 429:
            check_api_error(status, headers, body)
    api_rate_limit.drain()  # leave the bucket full for whatever runs next


def test_same_workers_after_the_corpus(sandbox, workers_before):
    """Runs last in the module: no worker died, timed out or was replaced, nothing was logged as
    a traceback, and the summary line of the corpus."""
    master, workers, since = workers_before
    print(f"\nbad-input corpus: {sum(SENT.values())} requests ({len(CASES)} cases), "
          f"statuses seen {dict(sorted(SENT.items()))}")
    assert sandbox.main_pid("classifier.service") == master, "the gunicorn master was replaced"
    assert sandbox.child_pids(master) == workers, "gunicorn workers died or were replaced"
    log = sandbox.journal("-u", "classifier.service", "--since", since)
    for bad in ("Traceback", "WORKER TIMEOUT", "Worker exiting", "was sent SIGKILL", "Booting worker"):
        assert bad not in log, f"{bad!r} in the journal during the corpus"
