from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

from classifier import model as model_io
from classifier.model import SHIPPED_TYPES, Model, ModelLoadError


def test_load_directory_and_file_give_same_model(model_dir: Path, model: Model) -> None:
    by_file = Model.load(model_dir / "model.skops")
    assert by_file.version == model.version == model.metadata["version"]
    assert model.labels == ["brinquedo", "game", "livro", "maquiagem"]


def test_predict_and_predict_many_agree(model: Model) -> None:
    texts = ["Batom vermelho matte", "Console PlayStation 4 com jogo FIFA"]
    assert model.predict_many(texts) == [model.predict(t) for t in texts]
    assert model.predict_many(texts) == ["maquiagem", "game"]
    assert all(isinstance(label, str) for label in model.predict_many(texts))


def test_shipped_file_uses_exactly_its_part_of_the_allow_list(model_dir: Path) -> None:
    # If this fails after a library upgrade, review the new types before allowing them.
    # (The course model's part: tests/test_convert.py.)
    assert model_io.types_in_file(model_dir / "model.skops") == SHIPPED_TYPES


def test_skops_file_is_not_a_pickle(model_dir: Path) -> None:
    assert (model_dir / "model.skops").read_bytes()[:4] == b"PK\x03\x04"


def test_tampered_model_is_refused(model_copy: Path) -> None:
    path = model_copy / "model.skops"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256"):
        Model.load(model_copy)


def test_metadata_sha256_mismatch_is_refused(model_copy: Path) -> None:
    meta_path = model_copy / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="sha256"):
        Model.load(model_copy)


def test_missing_metadata_is_refused(model_copy: Path) -> None:
    (model_copy / "model.json").unlink()
    with pytest.raises(ModelLoadError, match=r"model\.json"):
        Model.load(model_copy)


def test_missing_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        Model.load(tmp_path)


def test_non_zip_model_with_matching_hash_is_refused(
    tmp_path: Path, metadata: dict[str, Any]
) -> None:
    (tmp_path / "model.skops").write_bytes(b"not a zip file")
    _rewrite_hash(tmp_path, metadata)
    with pytest.raises(ModelLoadError, match="not a valid skops file"):
        Model.load(tmp_path)


def _rewrite_hash(directory: Path, metadata: dict[str, Any]) -> None:
    digest = model_io.sha256_file(directory / "model.skops")
    meta = {**metadata, "sha256": digest, "version": digest[:12]}
    (directory / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("estimator", "forbidden"),
    [
        # skops itself would refuse this one (builtins.eval is not trusted by default)...
        (FunctionTransformer(eval), "builtins.eval"),
        # ...but trusts this one; the allow-list still refuses it.
        (LogisticRegression(), "sklearn.linear_model._logistic.LogisticRegression"),
        (FunctionTransformer(np.log1p), "sklearn.preprocessing._function_transformer"),
    ],
)
def test_types_outside_allow_list_are_refused(
    tmp_path: Path, metadata: dict[str, Any], estimator: Any, forbidden: str
) -> None:
    # A correctly hashed file: only the type check stands in the way.
    model_io.save(estimator, tmp_path, {"labels": metadata["labels"]})
    with pytest.raises(ModelLoadError, match="outside the allow-list") as exc:
        Model.load(tmp_path)
    assert forbidden in str(exc.value)
