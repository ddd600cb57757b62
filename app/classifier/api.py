"""HTTP API, described by ``openapi.json`` (served at ``GET /openapi.json``).

``POST /predizer_categoria`` takes ``{"descricao": "<text>"}`` and answers
``200 {"categoria": <label>, "versao_modelo": <version>}``.
``POST /predizer_categorias`` takes ``{"descricoes": ["<text>", ...]}`` (1 to
``MAX_BATCH_SIZE`` texts) and answers ``200 {"categorias": [<label>, ...], "versao_modelo":
<version>}``, labels in the order of the texts. ``GET /health`` answers
``200 {"status": "ok", "versao_modelo": <version>}``.

Every error the app returns, Flask's own included, is
``{"erro": "<message>", "status": <int>}``:

- 400: body shorter than its ``Content-Length``, not valid UTF-8 or not valid JSON, JSON
  is not an object, ``descricao`` missing, not a string, or blank; ``descricoes`` missing,
  not a list, empty, or an element not a string or blank (the message names the element,
  ``descricoes[3]``);
- 413: body larger than ``MAX_CONTENT_LENGTH``, a text longer than
  ``MAX_DESCRIPTION_CHARS`` characters, or more than ``MAX_BATCH_SIZE`` texts (all
  "too large", hence one status);
- 415: Content-Type is not ``application/json`` (a ``charset`` other than UTF-8 too);
- 404/405 from routing, 500 for anything unexpected (logged with its traceback).

Every request ends in one log line, written when its response is ready: what happened
(``prediction``, ``prediction_batch``, ``rejected`` or ``request``), the request id, method,
path, status and duration, then what the request adds (the category and length of a
description, the count of a batch, the message of an error). One line, not an access line
plus an app line: journald's cost is per line, and the line carries everything an operator
greps for.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from importlib import resources
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from classifier.model import Model

logger = logging.getLogger("classifier")
bp = Blueprint("api", __name__)

EXTENSION_KEY = "classifier.model"
OPENAPI_KEY = "classifier.openapi"  # the served document, bytes
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"  # the header as WSGI gives it: no header object built
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Content-Type values accepted as they are, without werkzeug's header parser.
_PLAIN_JSON = frozenset({"application/json", "application/json; charset=utf-8"})

# Portuguese messages for the errors Flask/werkzeug raise on their own.
_HTTP_MESSAGES = {
    400: "requisição inválida",
    404: "recurso não encontrado",
    405: "método não permitido para este recurso",
    413: "corpo da requisição grande demais",
    415: "Content-Type não suportado",
    500: "erro interno do servidor",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"erro": message, "status": status}


def _json(**fields: Any) -> Response:
    """A compact JSON answer, UTF-8 as is: json.dumps straight into the response class,
    without the per-call set-up of Flask's JSON provider (``jsonify``)."""
    return current_app.response_class(
        json.dumps(fields, ensure_ascii=False, separators=(",", ":")), mimetype="application/json"
    )


def _model() -> Model:
    return current_app.extensions[EXTENSION_KEY]


def _read_json_object() -> dict[str, Any]:
    # The spelling nearly every client sends needs no parsing.
    if request.environ.get("CONTENT_TYPE") not in _PLAIN_JSON:
        _check_content_type()
    raw = _read_body()
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "corpo da requisição não é UTF-8 válido") from None
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ApiError(400, "corpo da requisição não é JSON válido") from None
    if not isinstance(body, dict):
        raise ApiError(400, "o corpo JSON deve ser um objeto")
    return body


def _check_content_type() -> None:
    if request.mimetype != "application/json":
        raise ApiError(415, "Content-Type deve ser application/json")
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise ApiError(415, f"charset {charset!r} não suportado; use utf-8")


def _read_body() -> bytes:
    length = request.content_length
    limit = request.max_content_length
    if length is not None and (limit is None or length <= limit):
        # A declared length within the limit: one read of the server's stream instead of
        # werkzeug's wrapper, which copies it in chunks (docs/benchmark.md: reading and checking
        # a 1.2 kB body 23 -> 12 µs in a loop, more under load).
        raw = request.environ["wsgi.input"].read(length)
        if len(raw) != length:
            raise ApiError(400, "corpo da requisição incompleto")
        return raw
    raw = request.get_data(cache=False)  # werkzeug: 413 if Content-Length is over the limit
    if length is None and limit is not None and len(raw) >= limit:
        # A body without Content-Length (chunked) is silently cut at the limit instead.
        raise RequestEntityTooLarge()
    return raw


def _check_text(text: Any, field: str, max_chars: int) -> str:
    """The rules for one description, ``field`` naming it in the messages."""
    if not isinstance(text, str):
        raise ApiError(400, f"campo '{field}' deve ser uma string")
    if not text.strip():
        raise ApiError(400, f"campo '{field}' está vazio")
    if len(text) > max_chars:
        raise ApiError(413, f"campo '{field}' excede {max_chars} caracteres")
    return text


def _read_description() -> str:
    body = _read_json_object()
    if "descricao" not in body:
        raise ApiError(400, "campo 'descricao' ausente")
    return _check_text(body["descricao"], "descricao", current_app.config["MAX_DESCRIPTION_CHARS"])


def _read_descriptions() -> list[str]:
    body = _read_json_object()
    if "descricoes" not in body:
        raise ApiError(400, "campo 'descricoes' ausente")
    texts = body["descricoes"]
    if not isinstance(texts, list):
        raise ApiError(400, "campo 'descricoes' deve ser uma lista de strings")
    if not texts:
        raise ApiError(400, "campo 'descricoes' está vazio")
    max_items = current_app.config["MAX_BATCH_SIZE"]
    if len(texts) > max_items:  # before looking at the elements: cheap and the clearer error
        raise ApiError(413, f"campo 'descricoes' excede {max_items} itens")
    max_chars = current_app.config["MAX_DESCRIPTION_CHARS"]
    for i, text in enumerate(texts):
        _check_text(text, f"descricoes[{i}]", max_chars)
    return texts


def _log_as(event: str, details: str) -> None:
    """What the request's log line says it was, and what it adds after the common fields."""
    g.log_event = event
    g.log_details = details


@bp.post("/predizer_categoria")
def predict_category() -> Response:
    text = _read_description()
    model = _model()
    label = model.predict(text)
    _log_as("prediction", f"categoria={label} chars={len(text)}")
    return _json(categoria=label, versao_modelo=model.version)


@bp.post("/predizer_categorias")
def predict_categories() -> Response:
    texts = _read_descriptions()
    model = _model()
    labels = model.predict_many(texts)
    _log_as("prediction_batch", f"count={len(texts)} chars={sum(map(len, texts))}")
    return _json(categorias=labels, versao_modelo=model.version)


@bp.get("/health")
def health() -> Response:
    return _json(status="ok", versao_modelo=_model().version)


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return current_app.response_class(
        current_app.extensions[OPENAPI_KEY], mimetype="application/json"
    )


def _start_request() -> None:
    g.started = time.perf_counter()
    given = request.environ.get(_REQUEST_ID_ENVIRON, "")
    g.request_id = given if _SANE_REQUEST_ID.fullmatch(given) else secrets.token_hex(16)


def _finish_request(response: Response) -> Response:
    """Echo the request id and write the request's one log line (errors included: Flask runs
    this after the error handlers too)."""
    request_id = g.get("request_id") or secrets.token_hex(16)
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("started")
    details = g.get("log_details")
    logger.info(
        "%s request_id=%s method=%s path=%s status=%d duration_ms=%.1f%s",
        g.get("log_event", "request"),
        request_id,
        request.method,
        request.path,
        response.status_code,
        (time.perf_counter() - started) * 1000 if started is not None else 0.0,
        f" {details}" if details else "",
    )
    return response


def _api_error(exc: ApiError) -> tuple[Response, int]:
    _log_as("rejected", f"erro={exc.message}")
    return _json(**_error_body(exc.status, exc.message)), exc.status


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    message = _HTTP_MESSAGES.get(status, exc.name)
    _log_as("rejected", f"erro={message}")
    response = _json(**_error_body(status, message))
    response.status_code = status
    # Keep werkzeug's extra headers, e.g. Allow on a 405.
    response.headers.extend((k, v) for k, v in exc.get_headers() if k.lower() != "content-type")
    return response


def _unexpected_error(exc: Exception) -> tuple[Response, int]:
    logger.exception("unhandled error request_id=%s", g.get("request_id"))
    _log_as("failed", f"erro={_HTTP_MESSAGES[500]}")
    return _json(**_error_body(500, _HTTP_MESSAGES[500])), 500


def openapi_bytes(config: Any) -> bytes:
    """``openapi.json`` with the limits of this app's configuration.

    The file states the defaults; the served copy states what this instance enforces,
    so a client (or a schema-based test) sees the real ``maxLength``/``maxItems``.
    """
    text = resources.files("classifier").joinpath("openapi.json").read_text("utf-8")
    document = json.loads(text)
    schemas = document["components"]["schemas"]
    schemas["Descricao"]["maxLength"] = config["MAX_DESCRIPTION_CHARS"]
    schemas["PredicaoEmLoteRequest"]["properties"]["descricoes"]["maxItems"] = config[
        "MAX_BATCH_SIZE"
    ]
    schemas["PredicaoEmLote"]["properties"]["categorias"]["maxItems"] = config["MAX_BATCH_SIZE"]
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")


def register(app: Flask) -> None:
    app.extensions[OPENAPI_KEY] = openapi_bytes(app.config)
    app.register_blueprint(bp)
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
