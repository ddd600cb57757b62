"""openapi.json against the app: same routes, and the app answers as documented."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from classifier import create_app
from classifier.model import Model

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Statuses every operation of a kind documents; 404 and 405 are in components.responses
# (they belong to no operation: an unknown path, an undeclared method).
# 429 and 502-504 come from nginx, in the same shape.
PROXY_STATUSES = {"429", "502", "503", "504"}
POST_STATUSES = {"200", "400", "413", "415", "500"} | PROXY_STATUSES
GET_STATUSES = {"200", "500"} | PROXY_STATUSES


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    text = resources.files("classifier").joinpath("openapi.json").read_text("utf-8")
    return json.loads(text)


def _resolve(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in item:
        assert item["$ref"].startswith("#/"), item["$ref"]
        node: Any = document
        for part in item["$ref"][2:].split("/"):
            node = node[part]
        item = node
    return item


def _validate(document: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    # The document's components ride along, so "#/components/..." refs resolve.
    Draft202012Validator({**schema, "components": document["components"]}).validate(instance)


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method, path, operation


def assert_conforms(
    document: dict[str, Any], responses: dict[str, Any], response: Any
) -> dict[str, Any]:
    """The response's status, media type, body and headers are as ``responses`` says."""
    status = str(response.status_code)
    assert status in responses, f"status {status} is not documented: {response.get_data()!r}"
    spec = _resolve(document, responses[status])
    assert response.mimetype in spec["content"], response.mimetype
    _validate(document, spec["content"][response.mimetype]["schema"], response.get_json())
    for name, header in spec.get("headers", {}).items():
        header = _resolve(document, header)
        if header.get("required"):
            assert name in response.headers, name
        if name in response.headers:
            _validate(document, header["schema"], response.headers[name])
    return spec


def _send(client: FlaskClient, method: str, path: str, request: dict[str, Any]) -> Any:
    body = request.get("body")
    headers = {}
    if body is not None:
        headers["Content-Type"] = request.get("contentType", "application/json")
    return client.open(
        path,
        method=method.upper(),
        data=None if body is None else body.encode("utf-8"),
        headers=headers,
    )


# --- the document itself -----------------------------------------------------------


def test_is_an_openapi_31_document(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    assert [server["url"] for server in document["servers"]] == ["/api"]
    definitions = pytest.importorskip("schemathesis.specs.openapi.definitions")
    # The OpenAPI Initiative's own schema of 3.1 documents, as schemathesis ships it.
    Draft202012Validator(definitions.OPENAPI_31).validate(document)


def test_every_schema_is_valid_json_schema(document: dict[str, Any]) -> None:
    for name, schema in document["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert name[0].isupper()


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    def refs(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if "$ref" in node:
                yield node
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = list(refs(document))
    assert len(found) > 20
    for ref in found:
        assert _resolve(document, ref)


def test_routes_match_document(app: Flask, document: dict[str, Any]) -> None:
    routes = {
        (rule.rule, method.lower())
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}  # Flask answers those
    }
    assert not any("<" in path for path, _ in routes)  # no parameters to translate
    documented = {(path, method) for method, path, _ in _operations(document)}
    assert routes == documented


def test_every_operation_documents_its_statuses(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        expected = POST_STATUSES if method == "post" else GET_STATUSES
        assert set(operation["responses"]) == expected, (method, path)
        for status, response in operation["responses"].items():
            response = _resolve(document, response)
            assert set(response["content"]) == {"application/json"}, (method, path, status)
            schema = response["content"]["application/json"]["schema"]
            if int(status) >= 400:
                assert schema["$ref"] == f"#/components/schemas/Erro{status}", (path, status)
    responses = document["components"]["responses"]
    for name, status in [("NaoEncontrado", 404), ("MetodoNaoPermitido", 405)]:
        schema = responses[name]["content"]["application/json"]["schema"]
        assert schema["$ref"] == f"#/components/schemas/Erro{status}"
    assert responses["MetodoNaoPermitido"]["headers"]["Allow"]["required"] is True


def test_error_schema_is_strict(document: dict[str, Any]) -> None:
    schema = {"$ref": "#/components/schemas/Erro400"}
    _validate(document, schema, {"erro": "x", "status": 400})
    for wrong in [
        {"erro": "x", "status": 413},
        {"erro": "", "status": 400},
        {"erro": "x"},
        {"erro": "x", "status": 400, "detalhe": "y"},
        {"error": "x", "status": 400},
    ]:
        with pytest.raises(Exception, match="."):
            _validate(document, schema, wrong)


def test_every_example_matches_its_schema(document: dict[str, Any]) -> None:
    checked = 0
    for _, _, operation in _operations(document):
        bodies = [operation.get("requestBody", {})] + list(operation["responses"].values())
        for item in bodies:
            for media in _resolve(document, item).get("content", {}).values():
                for example in media.get("examples", {}).values():
                    _validate(document, media["schema"], example["value"])
                    checked += 1
    for response in document["components"]["responses"].values():
        for media in response["content"].values():
            for example in media["examples"].values():
                _validate(document, media["schema"], example["value"])
                checked += 1
    assert checked > 30


# --- the document against the app --------------------------------------------------


def test_request_examples_answer_as_documented(
    client: FlaskClient, document: dict[str, Any], model: Model
) -> None:
    answered = 0
    for method, path, operation in _operations(document):
        if "requestBody" not in operation:
            continue
        media = operation["requestBody"]["content"]["application/json"]
        answers = operation["responses"]["200"]["content"]["application/json"]["examples"]
        for name, example in media["examples"].items():
            _validate(document, media["schema"], example["value"])
            response = client.open(path, method=method.upper(), json=example["value"])
            assert_conforms(document, operation["responses"], response)
            assert response.status_code == 200
            # The documented answer, with this model's version.
            expected = {**answers[name]["value"], "versao_modelo": model.version}
            assert response.get_json() == expected, name
            answered += 1
    assert answered >= 6


def _error_examples(
    document: dict[str, Any],
) -> Iterator[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    """(method, path, name, responses, example) of every example with an ``x-request``."""
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            response = _resolve(document, response)
            examples = response["content"]["application/json"].get("examples", {})
            for name, example in examples.items():
                if "x-request" in example:
                    yield method, path, f"{status} {name}", operation["responses"], example
    # Responses of no operation (404, 405) say where their request goes.
    for key, response in document["components"]["responses"].items():
        for name, example in response["content"]["application/json"]["examples"].items():
            if "path" in example.get("x-request", {}):
                request = example["x-request"]
                responses = {str(example["value"]["status"]): response}
                yield request["method"], request["path"], f"{key} {name}", responses, example


def test_error_examples_answer_as_documented(
    client: FlaskClient, document: dict[str, Any]
) -> None:
    seen = set()
    for method, path, name, responses, example in _error_examples(document):
        request = example["x-request"]
        method, path = request.get("method", method), request.get("path", path)
        response = _send(client, method, path, request)
        assert_conforms(document, responses, response)
        assert response.get_json() == example["value"], name
        seen.add(example["value"]["status"])
    assert seen == {400, 404, 405, 415}


def test_413_examples_answer_as_documented(
    client: FlaskClient, app: Flask, document: dict[str, Any]
) -> None:
    limit = app.config["MAX_DESCRIPTION_CHARS"]
    requests = {
        ("/predizer_categoria", "descricao_longa"): {"descricao": "a" * (limit + 1)},
        ("/predizer_categorias", "descricao_longa"): {
            "descricoes": ["batom"] * 7 + ["a" * (limit + 1)]
        },
        ("/predizer_categorias", "lote_grande"): {
            "descricoes": ["batom"] * (app.config["MAX_BATCH_SIZE"] + 1)
        },
    }
    for (path, name), body in requests.items():
        operation = document["paths"][path]["post"]
        example = operation["responses"]["413"]["content"]["application/json"]["examples"][name]
        response = client.post(path, json=body)
        assert_conforms(document, operation["responses"], response)
        assert response.get_json() == example["value"], (path, name)
    # The body limit: the same for every POST.
    big = b'{"descricao": "' + b"a" * app.config["MAX_CONTENT_LENGTH"] + b'"}'
    for path in {path for path, _ in requests}:
        operation = document["paths"][path]["post"]
        response = client.post(path, data=big, content_type="application/json")
        example = operation["responses"]["413"]["content"]["application/json"]["examples"]
        assert response.get_json() == example["corpo_grande"]["value"]


INVALID_REQUESTS = [
    pytest.param(b"{", "application/json", id="not-json"),
    pytest.param(b"[]", "application/json", id="not-object"),
    pytest.param(b"{}", "application/json", id="missing-field"),
    pytest.param(b'{"descricao": 1, "descricoes": 1}', "application/json", id="wrong-types"),
    pytest.param(b'{"descricao": "", "descricoes": [""]}', "application/json", id="empty"),
    pytest.param(b'{"descricoes": []}', "application/json", id="empty-list"),
    pytest.param(b'{"descricao": "batom"}', "text/plain", id="text-plain"),
    pytest.param(b"\xff", "application/json", id="not-utf8"),
]


@pytest.mark.parametrize(("body", "content_type"), INVALID_REQUESTS)
def test_invalid_requests_answer_documented_errors(
    client: FlaskClient, document: dict[str, Any], body: bytes, content_type: str
) -> None:
    for method, path, operation in _operations(document):
        if method != "post":
            continue
        response = client.post(path, data=body, content_type=content_type)
        assert 400 <= response.status_code < 500
        assert_conforms(document, operation["responses"], response)


def test_get_operations_answer_as_documented(
    client: FlaskClient, document: dict[str, Any]
) -> None:
    for method, path, operation in _operations(document):
        if method == "get":
            assert_conforms(document, operation["responses"], client.get(path))


def test_unexpected_error_answers_as_documented(
    app: Flask, document: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = app.extensions["classifier.model"]

    def boom(*args: Any) -> Any:
        raise RuntimeError("simulated")

    monkeypatch.setattr(model, "predict", boom)
    operation = document["paths"]["/predizer_categoria"]["post"]
    response = app.test_client().post("/predizer_categoria", json={"descricao": "batom"})
    assert response.status_code == 500
    spec = assert_conforms(document, operation["responses"], response)
    examples = spec["content"]["application/json"]["examples"]
    assert response.get_json() == examples["interno"]["value"]


# --- the served document -------------------------------------------------------------


def test_served_document_is_the_file(client: FlaskClient, document: dict[str, Any]) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == document  # default limits: exactly the file


def test_served_document_states_the_configured_limits(model_dir: Path) -> None:
    app = create_app(
        {"MODEL_PATH": str(model_dir), "MAX_DESCRIPTION_CHARS": 50, "MAX_BATCH_SIZE": 3}
    )
    client = app.test_client()
    served = client.get("/openapi.json").get_json()
    schemas = served["components"]["schemas"]
    assert schemas["Descricao"]["maxLength"] == 50
    assert schemas["PredicaoEmLoteRequest"]["properties"]["descricoes"]["maxItems"] == 3
    assert schemas["PredicaoEmLote"]["properties"]["categorias"]["maxItems"] == 3
    # ...and they are the limits the app enforces, at the boundary.
    single = served["paths"]["/predizer_categoria"]["post"]["responses"]
    batch = served["paths"]["/predizer_categorias"]["post"]["responses"]
    cases = [
        ("/predizer_categoria", {"descricao": "b" * 50}, single, 200),
        ("/predizer_categoria", {"descricao": "b" * 51}, single, 413),
        ("/predizer_categorias", {"descricoes": ["b" * 50] * 3}, batch, 200),
        ("/predizer_categorias", {"descricoes": ["b"] * 4}, batch, 413),
        ("/predizer_categorias", {"descricoes": ["b", "b" * 51]}, batch, 413),
    ]
    for path, body, responses, status in cases:
        response = client.post(path, json=body)
        assert response.status_code == status, (path, status)
        assert_conforms(served, responses, response)


def test_description_pattern_is_the_apps_blank_rule(
    client: FlaskClient, document: dict[str, Any]
) -> None:
    # The app rejects text.strip() == ""; the pattern must say exactly that, for every
    # code point (schemathesis found "\x1d" while the pattern was \S, which some regex
    # dialects read differently from Python).
    pattern = re.compile(document["components"]["schemas"]["Descricao"]["pattern"])
    every_char = "".join(map(chr, range(0x110000)))
    whitespace = "".join(c for c in every_char if c.isspace())
    assert pattern.sub("", every_char) == whitespace
    schema = {"$ref": "#/components/schemas/PredicaoRequest"}
    for text in ["\x1d", "\u3000 \x85", "\ufeff"]:
        valid = Draft202012Validator({**schema, "components": document["components"]}).is_valid(
            {"descricao": text}
        )
        response = client.post("/predizer_categoria", json={"descricao": text})
        assert valid == (response.status_code == 200), (text, response.get_json())


def test_document_version_is_the_package_version(document: dict[str, Any]) -> None:
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    with pyproject.open("rb") as f:
        assert document["info"]["version"] == tomllib.load(f)["project"]["version"]
