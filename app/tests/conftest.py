"""Shared fixtures: the model is trained once per session on the real CSV."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from classifier import create_app, train
from classifier.model import Model

DATA = Path(__file__).resolve().parents[1] / "data" / "produtos.csv"


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    directory = tmp_path_factory.mktemp("model")
    return directory, train.train(DATA, directory)


@pytest.fixture(scope="session")
def model_dir(trained: tuple[Path, dict[str, Any]]) -> Path:
    return trained[0]


@pytest.fixture(scope="session")
def metadata(trained: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    return trained[1]


@pytest.fixture(scope="session")
def model(model_dir: Path) -> Model:
    return Model.load(model_dir)


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the model directory that a test may damage."""
    return Path(shutil.copytree(model_dir, tmp_path / "model"))


@pytest.fixture(scope="session")
def app(model_dir: Path) -> Flask:
    return create_app({"MODEL_PATH": str(model_dir), "TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def log_records() -> Iterator[list[logging.LogRecord]]:
    """Records of the ``classifier`` logger (it does not propagate, so no caplog)."""
    handler = _ListHandler()
    logger = logging.getLogger("classifier")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
