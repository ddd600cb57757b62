from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder

from classifier import create_app, train
from classifier.model import Model

URL = "/predizer_categoria"
BATCH_URL = "/predizer_categorias"
DATA = Path(__file__).resolve().parents[1] / "data" / "produtos.csv"
DATA_TEXTS = train.load_dataset(DATA).texts
DATA_SAMPLE = DATA_TEXTS[::97]


def _post(client: FlaskClient, body: Any, **kwargs: Any) -> Any:
    return client.post(URL, json=body, **kwargs)


def _assert_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"erro", "status"}
    assert body["status"] == status
    assert isinstance(body["erro"], str) and body["erro"]
    return body


# --- happy paths -------------------------------------------------------------------


def test_predict(client: FlaskClient, model: Model) -> None:
    response = _post(client, {"descricao": "Batom líquido matte vermelho, longa duração"})
    assert response.status_code == 200
    assert response.get_json() == {"categoria": "maquiagem", "versao_modelo": model.version}


def test_health(client: FlaskClient, model: Model) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "versao_modelo": model.version}


@pytest.mark.parametrize(
    ("descricao", "categoria"),
    [
        ("Batom líquido matte vermelho, longa duração", "maquiagem"),
        ("Paleta de sombras com 12 cores e pincel para olhos", "maquiagem"),
        ("Jogo The Last of Us Part II para PlayStation 4, mídia física lacrado", "game"),
        ("Controle sem fio Xbox One original com jogo FIFA 19", "game"),
        ("Carrinho de controle remoto 4x4 recarregável", "brinquedo"),
        ("Urso de pelúcia gigante, 1 metro, antialérgico", "brinquedo"),
        ("Boneca Barbie com acessórios e carrinho de bebê, para crianças", "brinquedo"),
        ("Romance de Machado de Assis, Dom Casmurro, edição de bolso com 256 páginas", "livro"),
        ("Box Harry Potter com os sete livros da saga, capa dura", "livro"),
    ],
)
def test_realistic_descriptions(client: FlaskClient, descricao: str, categoria: str) -> None:
    response = _post(client, {"descricao": descricao})
    assert response.status_code == 200
    assert response.get_json()["categoria"] == categoria


@pytest.mark.xfail(
    strict=True,
    reason="known limitation: the data has no board games "
    "labelled brinquedo, and 'jogo' is strong evidence for game",
)
def test_board_game_is_a_toy(client: FlaskClient) -> None:
    response = _post(client, {"descricao": "Jogo de tabuleiro Banco Imobiliário Estrela"})
    assert response.get_json()["categoria"] == "brinquedo"


def test_charset_utf8_and_extra_fields_are_accepted(client: FlaskClient) -> None:
    body = json.dumps({"descricao": "Console Nintendo Switch", "nome": "x"}).encode()
    response = client.post(
        URL, data=body, headers={"Content-Type": "application/json; charset=UTF-8"}
    )
    assert response.status_code == 200
    assert response.get_json()["categoria"] == "game"


def test_description_at_the_limit_is_accepted(client: FlaskClient, app: Flask) -> None:
    limit = app.config["MAX_DESCRIPTION_CHARS"]
    assert _post(client, {"descricao": "batom " * (limit // 6)}).status_code == 200


# --- bad input ---------------------------------------------------------------------

BAD_BODIES = [
    pytest.param(b"{not json", "application/json", 400, id="malformed-json"),
    pytest.param(b"", "application/json", 400, id="empty-body"),
    pytest.param(b'{"descricao": "\xff\xfe batom"}', "application/json", 400, id="invalid-utf8"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "application/json", 400, id="deep-nesting"),
    pytest.param(b'["descricao"]', "application/json", 400, id="json-array"),
    pytest.param(b'"batom"', "application/json", 400, id="json-string"),
    pytest.param(b"null", "application/json", 400, id="json-null"),
    pytest.param(b"{}", "application/json", 400, id="descricao-missing"),
    pytest.param(b'{"nome": "Batom"}', "application/json", 400, id="descricao-missing-other"),
    pytest.param(b'{"descricao": null}', "application/json", 400, id="descricao-null"),
    pytest.param(b'{"descricao": 42}', "application/json", 400, id="descricao-number"),
    pytest.param(b'{"descricao": ["batom"]}', "application/json", 400, id="descricao-list"),
    pytest.param(b'{"descricao": {"a": 1}}', "application/json", 400, id="descricao-object"),
    pytest.param(b'{"descricao": ""}', "application/json", 400, id="descricao-empty"),
    pytest.param(b'{"descricao": " \\t\\n "}', "application/json", 400, id="descricao-blank"),
    pytest.param(b'{"descricao": "batom"}', "text/plain", 415, id="text-plain"),
    pytest.param(b'{"descricao": "batom"}', "application/x-www-form-urlencoded", 415, id="form"),
    pytest.param(b'{"descricao": "batom"}', None, 415, id="no-content-type"),
    pytest.param(
        b'{"descricao": "batom"}', "application/json; charset=latin-1", 415, id="charset-latin1"
    ),
]


@pytest.mark.parametrize(("body", "content_type", "status"), BAD_BODIES)
def test_bad_input(client: FlaskClient, body: bytes, content_type: str | None, status: int) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    _assert_error(client.post(URL, data=body, headers=headers), status)


def test_description_too_long(client: FlaskClient, app: Flask) -> None:
    limit = app.config["MAX_DESCRIPTION_CHARS"]
    body = _assert_error(_post(client, {"descricao": "a" * (limit + 1)}), 413)
    assert str(limit) in body["erro"]


def test_body_too_large(client: FlaskClient, app: Flask) -> None:
    size = app.config["MAX_CONTENT_LENGTH"] + 1
    _assert_error(_post(client, {"descricao": "b" * size}), 413)


def _post_chunked(app: Flask, body: bytes) -> Any:
    """A body without Content-Length, on a server that terminates the stream (gunicorn).

    Built by hand: the test client would add a Content-Length.
    """
    environ = EnvironBuilder(
        path=URL,
        method="POST",
        input_stream=io.BytesIO(body),
        headers=[("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    return app.response_class.from_app(app, environ, buffered=True)


def test_chunked_body(app: Flask) -> None:
    response = _post_chunked(app, json.dumps({"descricao": "Batom vermelho"}).encode())
    assert response.status_code == 200
    assert response.get_json()["categoria"] == "maquiagem"


def test_chunked_body_too_large(app: Flask) -> None:
    body = json.dumps({"descricao": "b" * app.config["MAX_CONTENT_LENGTH"]}).encode()
    _assert_error(_post_chunked(app, body), 413)


def test_body_shorter_than_its_content_length(app: Flask) -> None:
    """A client that stops sending mid-body gets a 400, not a parse of what arrived."""
    body = json.dumps({"descricao": "Batom vermelho"}).encode()
    environ = EnvironBuilder(
        path=URL, method="POST", input_stream=io.BytesIO(body),
        headers=[("Content-Type", "application/json")],
    ).get_environ()
    environ["CONTENT_LENGTH"] = str(len(body) + 10)
    response = app.response_class.from_app(app, environ, buffered=True)
    assert _assert_error(response, 400)["erro"] == "corpo da requisição incompleto"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/json;charset=utf8",
    ],
)
def test_json_content_types_are_accepted(client: FlaskClient, content_type: str) -> None:
    body = json.dumps({"descricao": "Batom vermelho"}).encode()
    response = client.post(URL, data=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.get_data(as_text=True)


def test_limits_are_configurable(model_dir: Path) -> None:
    client = create_app({"MODEL_PATH": str(model_dir), "MAX_DESCRIPTION_CHARS": 10}).test_client()
    assert client.post(URL, json={"descricao": "batom rosa"}).status_code == 200
    _assert_error(client.post(URL, json={"descricao": "batom rosa!"}), 413)


def test_unknown_route(client: FlaskClient) -> None:
    _assert_error(client.get("/nao-existe"), 404)


def test_wrong_method_keeps_allow_header(client: FlaskClient) -> None:
    response = client.get(URL)
    _assert_error(response, 405)
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("url", "body"),
    [(URL, {"descricao": "batom"}), (BATCH_URL, {"descricoes": ["batom", "boneca"]})],
    ids=["single", "batch"],
)
def test_unexpected_exception_gives_json_500(
    app: Flask,
    monkeypatch: pytest.MonkeyPatch,
    log_records: list[logging.LogRecord],
    url: str,
    body: dict[str, Any],
) -> None:
    model = app.extensions["classifier.model"]

    def boom(*args: Any) -> list[str]:
        raise ValueError("simulated failure")

    monkeypatch.setattr(model, "predict", boom)
    monkeypatch.setattr(model, "predict_many", boom)
    response = app.test_client().post(url, json=body, headers={"X-Request-ID": "bad-1"})
    body = _assert_error(response, 500)
    assert "simulated" not in body["erro"]  # no internals leak to the client
    errors = [r for r in log_records if r.levelno == logging.ERROR]
    assert errors and errors[0].exc_info and "simulated failure" in str(errors[0].exc_info[1])
    # The traceback, then the request's own line.
    lines = [r.getMessage() for r in log_records if "request_id=bad-1" in r.getMessage()]
    assert len(lines) == 2 and re.match(r"failed request_id=bad-1 .* status=500 ", lines[1]), lines
    # The app keeps working afterwards.
    monkeypatch.undo()
    assert app.test_client().get("/health").status_code == 200


# --- batch -------------------------------------------------------------------------


def test_batch_answers_in_order(client: FlaskClient, model: Model) -> None:
    texts = [
        "Box Harry Potter com os sete livros da saga, capa dura",
        "Batom líquido matte vermelho, longa duração",
        "Urso de pelúcia gigante, 1 metro, antialérgico",
        "Controle sem fio Xbox One original com jogo FIFA 19",
        "Batom nude",
    ]
    response = client.post(BATCH_URL, json={"descricoes": texts})
    assert response.status_code == 200
    assert response.get_json() == {
        "categorias": ["livro", "maquiagem", "brinquedo", "game", "maquiagem"],
        "versao_modelo": model.version,
    }


def test_batch_equals_single_requests(client: FlaskClient) -> None:
    texts = [r.strip() for r in DATA_SAMPLE]
    batch = client.post(BATCH_URL, json={"descricoes": texts}).get_json()["categorias"]
    singles = [_post(client, {"descricao": t}).get_json()["categoria"] for t in texts]
    assert batch == singles


def test_batch_at_the_limits(model_dir: Path) -> None:
    app = create_app({"MODEL_PATH": str(model_dir), "MAX_BATCH_SIZE": 3})
    client = app.test_client()
    limit = app.config["MAX_DESCRIPTION_CHARS"]
    texts = ["batom", "boneca", "b" * limit]
    assert client.post(BATCH_URL, json={"descricoes": texts}).status_code == 200
    body = _assert_error(client.post(BATCH_URL, json={"descricoes": [*texts, "x"]}), 413)
    assert body["erro"] == "campo 'descricoes' excede 3 itens"


def test_default_batch_of_1000_realistic_descriptions_fits(client: FlaskClient) -> None:
    # The 1000 longest training descriptions under the length limit, JSON-escaped as
    # most clients send them (ensure_ascii): must fit in the default body limit.
    texts = sorted((t for t in DATA_TEXTS if len(t) <= 20_000), key=len)[-1000:]
    data = json.dumps({"descricoes": texts}).encode()
    assert len(data) > 2_000_000
    response = client.post(BATCH_URL, data=data, content_type="application/json")
    assert response.status_code == 200, response.get_json()
    assert len(response.get_json()["categorias"]) == 1000


BAD_BATCHES = [
    pytest.param({}, 400, "campo 'descricoes' ausente", id="missing"),
    pytest.param({"descricao": "batom"}, 400, "campo 'descricoes' ausente", id="single-shape"),
    pytest.param({"descricoes": None}, 400, "deve ser uma lista", id="null"),
    pytest.param({"descricoes": "batom"}, 400, "deve ser uma lista", id="string"),
    pytest.param({"descricoes": {"0": "batom"}}, 400, "deve ser uma lista", id="object"),
    pytest.param({"descricoes": []}, 400, "campo 'descricoes' está vazio", id="empty"),
    pytest.param(
        {"descricoes": ["batom", 3]}, 400, "campo 'descricoes[1]' deve ser uma string", id="int"
    ),
    pytest.param(
        {"descricoes": ["batom", "boneca", None]},
        400,
        "campo 'descricoes[2]' deve ser uma string",
        id="null-element",
    ),
    pytest.param(
        {"descricoes": [["batom"]]}, 400, "campo 'descricoes[0]' deve ser uma string", id="nested"
    ),
    pytest.param(
        {"descricoes": ["batom", " \n\t "]}, 400, "campo 'descricoes[1]' está vazio", id="blank"
    ),
    pytest.param(
        {"descricoes": ["batom", "", 3]}, 400, "campo 'descricoes[1]' está vazio", id="first-wins"
    ),
    pytest.param(
        {"descricoes": ["batom"] * 4 + ["a" * 20_001]},
        413,
        "campo 'descricoes[4]' excede 20000 caracteres",
        id="too-long",
    ),
    pytest.param(
        {"descricoes": ["batom"] * 1001}, 413, "campo 'descricoes' excede 1000 itens", id="too-many"
    ),
    pytest.param(
        {"descricoes": [3] * 1001}, 413, "campo 'descricoes' excede 1000 itens", id="size-first"
    ),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_BATCHES)
def test_bad_batch(client: FlaskClient, body: Any, status: int, message: str) -> None:
    response = client.post(BATCH_URL, json=body)
    assert message in _assert_error(response, status)["erro"]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [p for p in BAD_BODIES if p.id != "descricao-list"],  # a list is what a batch wants
)
def test_batch_bad_input_like_single(
    client: FlaskClient, body: bytes, content_type: str | None, status: int
) -> None:
    # The same body-level rules (JSON, UTF-8, Content-Type) as the single endpoint.
    body = body.replace(b'"descricao"', b'"descricoes"')
    headers = {"Content-Type": content_type} if content_type else {}
    _assert_error(client.post(BATCH_URL, data=body, headers=headers), status)


def test_batch_body_too_large(client: FlaskClient, app: Flask) -> None:
    size = app.config["MAX_CONTENT_LENGTH"]
    texts = ["b" * 10_000] * (size // 10_000 + 1)
    _assert_error(client.post(BATCH_URL, json={"descricoes": texts}), 413)


def test_batch_is_logged(client: FlaskClient, log_records: list[logging.LogRecord]) -> None:
    headers = {"X-Request-ID": "b-1"}
    client.post(BATCH_URL, json={"descricoes": ["batom", "boneca"]}, headers=headers)
    lines = [r.getMessage() for r in log_records]
    assert any(
        re.fullmatch(
            r"prediction_batch request_id=b-1 method=POST path=/predizer_categorias status=200 "
            r"duration_ms=\d+\.\d count=2 chars=11",
            line,
        )
        for line in lines
    ), lines


# --- request id and logging --------------------------------------------------------


def test_request_id_is_echoed(client: FlaskClient, log_records: list[logging.LogRecord]) -> None:
    response = _post(client, {"descricao": "Batom nude"}, headers={"X-Request-ID": "abc-123.X_y"})
    assert response.headers["X-Request-ID"] == "abc-123.X_y"
    lines = [r.getMessage() for r in log_records]
    assert any(
        re.fullmatch(
            r"prediction request_id=abc-123\.X_y method=POST path=/predizer_categoria status=200 "
            r"duration_ms=\d+\.\d categoria=maquiagem chars=10",
            line,
        )
        for line in lines
    ), lines


@pytest.mark.parametrize(
    ("method", "path", "body", "line"),
    [
        ("GET", "/health", None, r"request request_id=one method=GET path=/health status=200 "),
        ("POST", URL, {"x": 1}, r"rejected request_id=one method=POST path=/predizer_categoria "
         r"status=400 duration_ms=\d+\.\d erro=campo 'descricao' ausente"),
        ("GET", "/nao-existe", None, r"rejected request_id=one method=GET path=/nao-existe "
         r"status=404 duration_ms=\d+\.\d erro=recurso não encontrado"),
        ("GET", URL, None, r"rejected request_id=one method=GET path=/predizer_categoria "
         r"status=405 "),
    ],
    ids=["health", "bad-body", "not-found", "wrong-method"],
)
def test_one_line_per_request(
    client: FlaskClient,
    log_records: list[logging.LogRecord],
    method: str,
    path: str,
    body: Any,
    line: str,
) -> None:
    client.open(path, method=method, json=body, headers={"X-Request-ID": "one"})
    lines = [r.getMessage() for r in log_records if "request_id=one " in r.getMessage()]
    assert len(lines) == 1, lines
    assert re.match(line, lines[0]), lines


@pytest.mark.parametrize("given", [None, "", "has space", "a" * 129, "semi;colon", "ção"])
def test_insane_request_id_is_replaced(client: FlaskClient, given: str | None) -> None:
    headers = {"X-Request-ID": given} if given is not None else {}
    response = _post(client, {"descricao": "batom"}, headers=headers)
    generated = response.headers["X-Request-ID"]
    assert generated != given
    assert re.fullmatch(r"[0-9a-f]{32}", generated)


def test_request_id_on_errors(client: FlaskClient) -> None:
    response = client.get("/nao-existe", headers={"X-Request-ID": "req-404"})
    assert response.headers["X-Request-ID"] == "req-404"
    response = client.post(URL, data=b"x", headers={"X-Request-ID": "req-415"})
    assert response.headers["X-Request-ID"] == "req-415"


def test_startup_log_line(
    model_dir: Path, model: Model, log_records: list[logging.LogRecord]
) -> None:
    create_app({"MODEL_PATH": str(model_dir)})
    assert f"model loaded version={model.version} path={model_dir}" in [
        r.getMessage() for r in log_records
    ]


# --- startup -----------------------------------------------------------------------


def test_create_app_without_model_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLASSIFIER_MODEL_PATH", raising=False)
    with pytest.raises(RuntimeError, match="CLASSIFIER_MODEL_PATH"):
        create_app()


def test_create_app_with_missing_model(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.skops"
    with pytest.raises(RuntimeError, match="not found") as exc:
        create_app({"MODEL_PATH": str(missing)})
    assert str(missing) in str(exc.value)


def test_create_app_with_tampered_model(model_copy: Path) -> None:
    with (model_copy / "model.skops").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(RuntimeError, match="sha256") as exc:
        create_app({"MODEL_PATH": str(model_copy)})
    assert str(model_copy) in str(exc.value)


def test_create_app_reads_env(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, model: Model
) -> None:
    monkeypatch.setenv("CLASSIFIER_MODEL_PATH", str(model_dir / "model.skops"))
    client = create_app().test_client()
    assert client.get("/health").get_json()["versao_modelo"] == model.version


def test_config_overrides_env(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLASSIFIER_MODEL_PATH", str(model_dir))
    with pytest.raises(RuntimeError, match="not found"):
        create_app({"MODEL_PATH": str(tmp_path)})


def test_limits_from_env(monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> None:
    monkeypatch.setenv("CLASSIFIER_MODEL_PATH", str(model_dir))
    monkeypatch.setenv("CLASSIFIER_MAX_DESCRIPTION_CHARS", "10")
    client = create_app().test_client()
    assert client.post("/predizer_categoria", json={"descricao": "a" * 10}).status_code == 200
    response = client.post("/predizer_categoria", json={"descricao": "a" * 11})
    assert response.status_code == 413
    assert response.get_json()["status"] == 413


def test_bad_limit_in_env_fails_clearly(monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> None:
    monkeypatch.setenv("CLASSIFIER_MODEL_PATH", str(model_dir))
    monkeypatch.setenv("CLASSIFIER_MAX_CONTENT_LENGTH", "1m")
    with pytest.raises(RuntimeError, match="CLASSIFIER_MAX_CONTENT_LENGTH must be a whole number"):
        create_app()


def test_batch_size_from_env(monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> None:
    monkeypatch.setenv("CLASSIFIER_MODEL_PATH", str(model_dir))
    monkeypatch.setenv("CLASSIFIER_MAX_BATCH_SIZE", "2")
    client = create_app().test_client()
    assert client.post(BATCH_URL, json={"descricoes": ["a", "b"]}).status_code == 200
    _assert_error(client.post(BATCH_URL, json={"descricoes": ["a", "b", "c"]}), 413)


def test_default_limits(app: Flask) -> None:
    assert app.config["MAX_BATCH_SIZE"] == 1000
    assert app.config["MAX_DESCRIPTION_CHARS"] == 20_000
    assert app.config["MAX_CONTENT_LENGTH"] == 4 * 1024 * 1024


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_BATCH_SIZE", 0),
        ("MAX_BATCH_SIZE", "10"),
        ("MAX_DESCRIPTION_CHARS", -1),
        ("MAX_CONTENT_LENGTH", True),
    ],
)
def test_bad_limit_in_config_fails_clearly(model_dir: Path, key: str, value: Any) -> None:
    with pytest.raises(RuntimeError, match=f"{key} must be a whole number >= 1"):
        create_app({"MODEL_PATH": str(model_dir), key: value})


def test_warning_level_leaves_out_the_request_lines(
    model_dir: Path, log_records: list[logging.LogRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the role's classifier_app_log_level=warning sets in the unit's environment.
    monkeypatch.setenv("CLASSIFIER_LOG_LEVEL", "warning")
    logger = logging.getLogger("classifier")
    level = logger.level
    try:
        quiet = create_app({"MODEL_PATH": str(model_dir)})
        assert quiet.test_client().get("/health", headers={"X-Request-ID": "quiet"}).status_code == 200
    finally:
        logger.setLevel(level)
    assert not [r for r in log_records if "request_id=quiet" in r.getMessage()]
