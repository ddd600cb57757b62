from __future__ import annotations

import csv
import hashlib
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from classifier import train
from classifier.model import Model

DATA = Path(__file__).resolve().parents[1] / "data" / "produtos.csv"

TARGET_MACRO_F1 = 0.99


def test_reported_metrics_meet_target(metadata: dict[str, Any]) -> None:
    metrics = metadata["metrics"]
    assert metrics["macro_f1"] >= TARGET_MACRO_F1
    assert metrics["accuracy"] >= TARGET_MACRO_F1
    assert metrics["per_class"]["macro avg"]["f1-score"] == pytest.approx(metrics["macro_f1"])


def test_metrics_recomputed_independently(model: Model, metadata: dict[str, Any]) -> None:
    # Rebuild the split from the CSV here, without the training code, and score the
    # saved model on it.
    with DATA.open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter=";") if r["categoria"]]
    texts = [f"{r['nome']} {r['descricao'] or ''}" for r in rows]
    labels = [r["categoria"] for r in rows]
    _, x_test, _, y_test = train_test_split(texts, labels, test_size=0.2, random_state=10)
    predicted = model.predict_many(x_test)
    assert len(x_test) == metadata["training"]["split"]["n_test"] == 816
    assert f1_score(y_test, predicted, average="macro") >= TARGET_MACRO_F1
    assert accuracy_score(y_test, predicted) == pytest.approx(metadata["metrics"]["accuracy"])


def test_dataset_reading() -> None:
    data = train.load_dataset(DATA)
    assert data.rows_read == len(data.texts) == 4080
    assert data.rows_without_label == 0
    assert data.empty_descricao == 1164
    assert sorted(set(data.labels)) == sorted(train.LABELS)
    assert data.sha256 == hashlib.sha256(DATA.read_bytes()).hexdigest()


def test_dataset_drops_rows_without_label(tmp_path: Path) -> None:
    csv_path = tmp_path / "d.csv"
    csv_path.write_text(
        "nome;descricao;categoria\nBatom;;maquiagem\nSem rótulo;algo;\nLivro X;romance;livro\n",
        encoding="utf-8",
    )
    data = train.load_dataset(csv_path)
    assert data.texts == ["Batom ", "Livro X romance"]
    assert data.labels == ["maquiagem", "livro"]
    assert (data.rows_read, data.rows_without_label, data.empty_descricao) == (3, 1, 1)


def test_dataset_rejects_unknown_label(tmp_path: Path) -> None:
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("nome;descricao;categoria\nCadeira;;movel\n", encoding="utf-8")
    with pytest.raises(ValueError, match="movel"):
        train.load_dataset(csv_path)


def test_model_json_contents(model_dir: Path, metadata: dict[str, Any]) -> None:
    skops_bytes = (model_dir / "model.skops").read_bytes()
    digest = hashlib.sha256(skops_bytes).hexdigest()
    assert metadata["sha256"] == digest
    assert metadata["version"] == digest[:12]
    assert metadata["labels"] == ["brinquedo", "game", "livro", "maquiagem"]
    assert metadata["training"]["data_sha256"] == hashlib.sha256(DATA.read_bytes()).hexdigest()
    split = metadata["training"]["split"]
    assert (split["test_size"], split["random_state"], split["stratify"]) == (0.2, 10, False)
    assert split["n_train"] + split["n_test"] == 4080
    assert set(metadata["libraries"]) == {"python", "sklearn", "numpy", "scipy", "skops"}
    assert datetime.fromisoformat(metadata["created_at"]).utcoffset() == timedelta(0)
    assert "LinearSVC" in metadata["pipeline"]["description"]
    assert metadata["pipeline"]["tfidf"]["stop_words_count"] == len(train.stop_words())
    for label in metadata["labels"]:
        assert 0.95 <= metadata["metrics"]["per_class"][label]["f1-score"] <= 1.0


def test_stop_words_list() -> None:
    words = train.stop_words()
    assert len(words) == len(set(words)) > 150
    assert {"de", "que", "não", "é", "você", "estávamos"} <= set(words)
    assert all(w == w.lower() and re.fullmatch(r"\w+", w) for w in words)


def test_stop_words_are_removed_inside_the_pipeline(model: Model) -> None:
    vocabulary = model._pipeline.named_steps["tfidf"].vocabulary_
    assert "de" not in vocabulary and "não" not in vocabulary
    assert "batom" in vocabulary
    assert not any(w != w.lower() for w in vocabulary)


def test_training_is_byte_reproducible(model_dir: Path, tmp_path: Path) -> None:
    again = train.train(DATA, tmp_path)
    assert (tmp_path / "model.skops").read_bytes() == (model_dir / "model.skops").read_bytes()
    assert again["version"] == Model.load(model_dir).version


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        train.main(["--help"])
    assert exc.value.code == 0
    assert "--output" in capsys.readouterr().out


def test_cli_rejects_missing_data(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        train.main(["--data", str(tmp_path / "nope.csv"), "--output", str(tmp_path)])
    assert exc.value.code == 2
    assert not (tmp_path / "model.skops").exists()
