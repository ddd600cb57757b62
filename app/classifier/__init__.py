"""Product-category classifier web service.

``create_app`` builds the Flask app and loads the model once; under
``gunicorn --preload classifier.wsgi:app`` the workers share that copy.

Configuration (``config`` argument, else environment):

- ``MODEL_PATH`` (env ``CLASSIFIER_MODEL_PATH``): ``model.skops`` or the directory
  holding it; ``model.json`` must sit beside it. Required.
- ``MAX_DESCRIPTION_CHARS`` (env ``CLASSIFIER_MAX_DESCRIPTION_CHARS``): longest accepted
  ``descricao`` (default 20000).
- ``MAX_BATCH_SIZE`` (env ``CLASSIFIER_MAX_BATCH_SIZE``): most ``descricoes`` in one
  ``POST /predizer_categorias`` (default 1000).
- ``MAX_CONTENT_LENGTH`` (env ``CLASSIFIER_MAX_CONTENT_LENGTH``): largest accepted body in
  bytes (default 4 MiB: a batch of 1000 of the longest descriptions of the training data,
  JSON-escaped, is 2.7 MB; a random batch of 1000 is ~1.1 MB). A proxy in front should
  accept the same (nginx ``client_max_body_size 4m``).
- ``LOG_LEVEL`` (env ``CLASSIFIER_LOG_LEVEL``): default ``INFO``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from flask import Flask

from classifier import api
from classifier.model import Model, ModelLoadError

__all__ = ["create_app"]

MODEL_PATH_ENV = "CLASSIFIER_MODEL_PATH"
LOG_LEVEL_ENV = "CLASSIFIER_LOG_LEVEL"

DEFAULTS: dict[str, Any] = {
    "MAX_DESCRIPTION_CHARS": 20_000,
    "MAX_BATCH_SIZE": 1000,
    "MAX_CONTENT_LENGTH": 4 * 1024 * 1024,
}

# Integer settings that systemd's Environment= may give as CLASSIFIER_<KEY>.
INT_ENV_KEYS = ("MAX_DESCRIPTION_CHARS", "MAX_BATCH_SIZE", "MAX_CONTENT_LENGTH")

logger = logging.getLogger("classifier")
_HANDLER_NAME = "classifier-stderr"


def _configure_logging(level: str) -> None:
    # No timestamps: journald adds them. Own handler, no propagation, so a host app's
    # root configuration does not print our lines twice.
    if not any(h.get_name() == _HANDLER_NAME for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; raise ``RuntimeError`` if the model can't be loaded."""
    # No static route: nginx serves the form; every route is in openapi.json.
    app = Flask(__name__, static_folder=None)
    app.config.update(DEFAULTS)
    app.config["MODEL_PATH"] = os.environ.get(MODEL_PATH_ENV)
    app.config["LOG_LEVEL"] = os.environ.get(LOG_LEVEL_ENV, "INFO")
    for key in INT_ENV_KEYS:
        raw = os.environ.get(f"CLASSIFIER_{key}")
        if raw is None:
            continue
        try:
            app.config[key] = int(raw)
        except ValueError:
            raise RuntimeError(f"CLASSIFIER_{key} must be a whole number, not {raw!r}") from None
    app.config.update(config or {})
    for key in INT_ENV_KEYS:
        value = app.config[key]
        if key == "MAX_CONTENT_LENGTH" and value is None:  # Flask's "no limit"
            continue
        # bool is an int too; a limit of 0 would refuse every request.
        if type(value) is not int or value < 1:
            raise RuntimeError(f"{key} must be a whole number >= 1, not {value!r}")
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    _configure_logging(app.config["LOG_LEVEL"])

    path = app.config["MODEL_PATH"]
    if not path:
        raise RuntimeError(
            f"no model configured: set {MODEL_PATH_ENV} (or config MODEL_PATH) to the "
            "path of model.skops or of its directory"
        )
    try:
        model = Model.load(path)
    except ModelLoadError as exc:
        raise RuntimeError(f"cannot load model from {path}: {exc}") from exc
    app.extensions[api.EXTENSION_KEY] = model
    logger.info("model loaded version=%s path=%s", model.version, os.path.abspath(path))

    api.register(app)
    return app
