"""Saving and loading the trained pipeline: skops format, never pickle.

A model is two files side by side: ``model.skops`` (the scikit-learn pipeline) and
``model.json`` (its metadata, including the sha256 of ``model.skops``). Loading checks,
in order: the metadata is readable, the sha256 matches, every type in the file is in
``ALLOWED_TYPES``; only then does skops build the objects. The verified pipeline is then
compiled into the serving path (``classifier.fastpath``), which must give scikit-learn's
scores on probe texts, else loading fails. A pipeline the compiler does not reproduce
(e.g. a converted course model, CountVectorizer + MultinomialNB) is served by
scikit-learn itself; which path serves is logged once per load.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import skops.io as sio

from classifier.fastpath import CompiledPipeline, UnsupportedPipeline

MODEL_FILENAME = "model.skops"
METADATA_FILENAME = "model.json"

logger = logging.getLogger("classifier.model")

# Every type the shipped pipeline (TfidfVectorizer + LinearSVC) is made of, fully
# qualified as skops names them.
SHIPPED_TYPES: frozenset[str] = frozenset(
    {
        "builtins.dict",
        "builtins.list",
        "builtins.str",
        "builtins.tuple",
        "numpy.float64",
        "numpy.ndarray",
        "sklearn.feature_extraction.text.TfidfTransformer",
        "sklearn.feature_extraction.text.TfidfVectorizer",
        "sklearn.pipeline.Pipeline",
        "sklearn.svm._classes.LinearSVC",
    }
)
# What the course's pipeline (CountVectorizer + MultinomialNB, converted from its pickle by
# ``classifier.convert``) adds: its two estimators and CountVectorizer's default
# ``dtype=numpy.int64``.
COURSE_TYPES: frozenset[str] = frozenset(
    {
        "numpy.int64",
        "sklearn.feature_extraction.text.CountVectorizer",
        "sklearn.naive_bayes.MultinomialNB",
    }
)
# Anything else in a model file is refused, even the many types skops would trust by
# default: this service serves these two kinds of model only.
ALLOWED_TYPES: frozenset[str] = SHIPPED_TYPES | COURSE_TYPES

# Zip members get a fixed timestamp so identical models give identical bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_SCHEMA = "schema.json"


class ModelLoadError(RuntimeError):
    """The model files are missing, inconsistent, tampered with or not allowed."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_paths(path: str | Path) -> tuple[Path, Path]:
    """Return (model file, metadata file); ``path`` is the model file or its directory."""
    model_path = Path(path)
    if model_path.is_dir():
        model_path = model_path / MODEL_FILENAME
    return model_path, model_path.with_suffix(".json")


def save(pipeline: Any, directory: str | Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write ``model.skops`` and ``model.json`` into ``directory``; return the metadata.

    ``sha256`` and ``version`` are computed here and added to a copy of ``metadata``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILENAME
    # sklearn caches id(stop_words) to skip a one-off consistency check; the id is
    # meaningless after loading and would make the file differ on every run.
    for step in getattr(pipeline, "named_steps", {}).values():
        vars(step).pop("_stop_words_id", None)
    data = _canonical_skops(sio.dumps(pipeline))
    model_path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    meta = {**metadata, "sha256": digest, "version": digest[:12], "model_file": MODEL_FILENAME}
    (directory / METADATA_FILENAME).write_text(
        json.dumps(meta, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
    )
    return meta


def _canonical_skops(raw: bytes) -> bytes:
    """Make a skops archive reproducible.

    skops names array members and ``__id__`` fields after ``id()`` of the in-memory
    objects and stamps members with the current time. Ids are renumbered in document
    order (starting at 1: skops ignores an id of 0) and member names follow; loading
    only needs ids to be consistent within the file, which a bijection keeps.
    """
    with zipfile.ZipFile(io.BytesIO(raw)) as src:
        schema = json.loads(src.read(_SCHEMA))
        members = {name: src.read(name) for name in src.namelist() if name != _SCHEMA}
    ids: dict[int, int] = {}
    names: dict[str, str] = {}
    for node in _nodes(schema):
        if isinstance(node.get("__id__"), int):
            node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
        old = node.get("file")
        if isinstance(old, str) and old in members:
            names.setdefault(old, f"{len(names) + 1}{PurePosixPath(old).suffix}")
            node["file"] = names[old]
    if len(names) != len(members):
        raise ValueError("skops archive has members the schema does not reference")
    entries = [(_SCHEMA, json.dumps(schema, separators=(",", ":")).encode())]
    entries += [(names[old], members[old]) for old in names]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, data)
    return out.getvalue()


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every dict in a skops schema, depth first in document order."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def types_in_file(model_path: Path) -> set[str]:
    """Fully qualified names of every object type a skops file describes."""
    with zipfile.ZipFile(model_path) as archive:
        schema = json.loads(archive.read(_SCHEMA))
    found = set()
    for node in _nodes(schema):
        module, cls = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(cls, str):
            found.add(f"{module}.{cls}")
    return found


def _read_metadata(metadata_path: Path) -> dict[str, Any]:
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"metadata file {metadata_path} not found") from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"metadata file {metadata_path} is unreadable: {exc}") from exc
    if not isinstance(metadata, dict) or not isinstance(metadata.get("sha256"), str):
        raise ModelLoadError(f"metadata file {metadata_path} has no 'sha256' string")
    return metadata


class Model:
    """A loaded classifier. Prediction goes through here only, so the inference
    implementation can change without touching the HTTP layer.

    ``predict``/``predict_many`` use the compiled tables (~100x faster than
    scikit-learn for one text) when the compiler reproduces the pipeline exactly, else
    scikit-learn's ``Pipeline.predict`` (``serving_path`` says which).
    ``predict_many_sklearn`` is the reference path the fast one is tested against.
    Raises ``UnsupportedPipeline`` if the pipeline compiles but the compiled tables
    disagree with scikit-learn: that is a bug to fix, not a model to serve slowly.
    """

    def __init__(self, pipeline: Any, metadata: dict[str, Any]) -> None:
        self._pipeline = pipeline
        self.metadata = metadata
        self.version: str = metadata["version"]
        self.labels: list[str] = [str(label) for label in pipeline.classes_]
        self._fast: CompiledPipeline | None
        try:
            self._fast = CompiledPipeline(pipeline)
        except UnsupportedPipeline as exc:
            # A setting the compiler does not reproduce: scikit-learn answers instead,
            # slower but right.
            self._fast = None
            self.serving_path = "scikit-learn"
            logger.warning(
                "serving path: scikit-learn (version=%s; the fast path does not support "
                "this pipeline: %s)",
                self.version,
                exc,
            )
            return
        self._fast.verify(pipeline)
        self.serving_path = "fast"
        logger.info("serving path: fast (compiled, version=%s)", self.version)

    @classmethod
    def load(cls, path: str | Path) -> Model:
        """Load and verify a model; raise ``ModelLoadError`` saying why if it can't."""
        model_path, metadata_path = resolve_paths(path)
        if not model_path.is_file():
            raise ModelLoadError(f"model file {model_path} not found")
        metadata = _read_metadata(metadata_path)

        digest = sha256_file(model_path)
        if digest != metadata["sha256"]:
            raise ModelLoadError(
                f"sha256 of {model_path} is {digest}, but {metadata_path} says "
                f"{metadata['sha256']}: the file was modified or belongs to another model"
            )
        if metadata.get("version") != digest[:12]:
            raise ModelLoadError(f"'version' in {metadata_path} does not match the sha256")

        try:
            found = types_in_file(model_path) | set(sio.get_untrusted_types(file=model_path))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise ModelLoadError(f"{model_path} is not a valid skops file: {exc}") from exc
        unexpected = sorted(found - ALLOWED_TYPES)
        if unexpected:
            raise ModelLoadError(
                f"{model_path} contains types outside the allow-list: {', '.join(unexpected)}"
            )
        try:
            # Everything is in ALLOWED_TYPES by now; trust exactly what skops asks for.
            pipeline = sio.load(model_path, trusted=sorted(found))
        except Exception as exc:  # skops/sklearn raise many kinds; all mean "unusable"
            raise ModelLoadError(f"cannot load {model_path}: {exc}") from exc

        try:
            model = cls(pipeline, metadata)
        except UnsupportedPipeline as exc:
            raise ModelLoadError(f"cannot compile {model_path} for serving: {exc}") from exc
        if model.labels != sorted(metadata.get("labels", [])):
            raise ModelLoadError(
                f"labels in {model_path} ({model.labels}) differ from {metadata_path}"
            )
        return model

    def predict(self, text: str) -> str:
        """Label of one text."""
        if self._fast is None:
            return str(self._pipeline.predict([text])[0])
        return self._fast.predict(text)

    def predict_many(self, texts: Sequence[str]) -> list[str]:
        """Labels of ``texts``, in order."""
        if self._fast is None:
            return self.predict_many_sklearn(texts)
        return self._fast.predict_many(texts)

    def scores(self, text: str) -> list[float]:
        """Decision scores of one text, one per label (one in all for two labels).

        Only for pipelines with a ``decision_function`` (not MultinomialNB's).
        """
        if self._fast is None:
            return np.atleast_1d(self._pipeline.decision_function([text])[0]).tolist()
        return self._fast.scores(text)

    def predict_many_sklearn(self, texts: Sequence[str]) -> list[str]:
        """scikit-learn's own ``Pipeline.predict``: the reference, not the serving path."""
        return [str(label) for label in self._pipeline.predict(list(texts))]
