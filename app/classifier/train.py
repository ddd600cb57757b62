"""Train the product-category classifier.

    python -m classifier.train --data data/produtos.csv --output models/

The text is ``nome + " " + descricao``; all preprocessing (lower-casing, ``\\w+``
tokens, Portuguese stop words) is done by the vectorizer inside the pipeline, so the
service applies exactly the same transformation to raw text at prediction time.
The model is fit on the training split only, so the reported test metrics describe
the shipped model.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from classifier import model as model_io

LABELS = ("brinquedo", "game", "livro", "maquiagem")
TEST_SIZE = 0.2
RANDOM_STATE = 10  # the course's split; also seeds LinearSVC
TOKEN_PATTERN = r"\w+"
# Chosen by 5-fold CV on the training split (macro-F1 ~0.986 for every C in 1..30, with
# or without bigrams); unigrams give a 5x smaller vocabulary for the same score.
SVC_C = 10.0


def stop_words() -> list[str]:
    """The Portuguese stop-word list shipped with the package (NLTK's list)."""
    text = resources.files("classifier").joinpath("stopwords_pt.txt").read_text("utf-8")
    words = (line.strip() for line in text.splitlines())
    return [w for w in words if w and not w.startswith("#")]


@dataclass(frozen=True)
class Dataset:
    texts: list[str]
    labels: list[str]
    rows_read: int
    rows_without_label: int
    empty_descricao: int
    sha256: str


def load_dataset(path: Path) -> Dataset:
    """Read the ``;``-separated CSV (``nome;descricao;categoria``)."""
    raw = path.read_bytes()
    reader = csv.DictReader(raw.decode("utf-8-sig").splitlines(keepends=True), delimiter=";")
    missing = {"nome", "descricao", "categoria"} - set(reader.fieldnames or [])
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    texts, labels = [], []
    rows = no_label = empty = 0
    for row in reader:
        rows += 1
        label = (row["categoria"] or "").strip()
        if not label:
            no_label += 1
            continue
        if label not in LABELS:
            raise ValueError(f"{path}: row {rows}: unknown label {label!r}")
        descricao = row["descricao"] or ""
        empty += not descricao.strip()
        texts.append(f"{row['nome'] or ''} {descricao}")
        labels.append(label)
    return Dataset(texts, labels, rows, no_label, empty, hashlib.sha256(raw).hexdigest())


def build_pipeline() -> Pipeline:
    return Pipeline(
        [
            (
                "tfidf",
                TfidfVectorizer(
                    lowercase=True,
                    token_pattern=TOKEN_PATTERN,
                    stop_words=stop_words(),
                    ngram_range=(1, 1),
                    sublinear_tf=True,
                ),
            ),
            ("clf", LinearSVC(C=SVC_C, random_state=RANDOM_STATE)),
        ]
    )


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist, key in [
        ("scikit-learn", "sklearn"),
        ("numpy", "numpy"),
        ("scipy", "scipy"),
        ("skops", "skops"),
    ]:
        versions[key] = importlib_metadata.version(dist)
    return versions


def split_dataset(data: Dataset) -> tuple[list[str], list[str], list[str], list[str]]:
    """(x_train, x_test, y_train, y_test): the project's split, shared with convert."""
    # Unstratified, as in the course; the classes are balanced anyway.
    return train_test_split(
        data.texts, data.labels, test_size=TEST_SIZE, random_state=RANDOM_STATE
    )


def split_metadata(n_train: int, n_test: int) -> dict[str, Any]:
    return {
        "function": "sklearn.model_selection.train_test_split",
        "test_size": TEST_SIZE,
        "random_state": RANDOM_STATE,
        "shuffle": True,
        "stratify": False,
        "n_train": n_train,
        "n_test": n_test,
    }


def evaluate(pipeline: Any, x_test: list[str], y_test: list[str]) -> dict[str, Any]:
    """Macro-F1, accuracy, per-class report and confusion matrix on ``x_test``."""
    predicted = [str(label) for label in pipeline.predict(x_test)]
    labels = sorted(LABELS)
    return {
        "evaluated_on": "test split",
        "macro_f1": float(f1_score(y_test, predicted, average="macro")),
        "accuracy": float(accuracy_score(y_test, predicted)),
        "per_class": classification_report(
            y_test, predicted, labels=labels, output_dict=True, zero_division=0
        ),
        "confusion_matrix": {
            "labels": labels,
            "rows_true_columns_predicted": confusion_matrix(
                y_test, predicted, labels=labels
            ).tolist(),
        },
    }


def train(data_path: Path, output_dir: Path) -> dict[str, Any]:
    """Train, evaluate and save; return the metadata written to ``model.json``."""
    started = time.perf_counter()
    data = load_dataset(data_path)
    x_train, x_test, y_train, y_test = split_dataset(data)
    pipeline = build_pipeline().fit(x_train, y_train)
    metrics = evaluate(pipeline, x_test, y_test)
    labels = sorted(LABELS)
    params = pipeline.get_params()
    metadata: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "labels": labels,
        "pipeline": {
            "description": (
                "TfidfVectorizer(lower-case, tokens \\w+, NLTK Portuguese stop words, "
                f"unigrams, sublinear tf) -> LinearSVC(C={SVC_C:g}); input: raw text"
            ),
            "tfidf": {
                k: params[f"tfidf__{k}"]
                for k in ("lowercase", "token_pattern", "strip_accents", "sublinear_tf")
            }
            | {
                "ngram_range": list(params["tfidf__ngram_range"]),
                "stop_words_count": len(params["tfidf__stop_words"]),
                "vocabulary_size": len(pipeline.named_steps["tfidf"].vocabulary_),
            },
            "clf": {k: params[f"clf__{k}"] for k in ("C", "loss", "penalty", "random_state")},
        },
        "training": {
            "data_file": data_path.name,
            "data_sha256": data.sha256,
            "rows_read": data.rows_read,
            "rows_dropped_without_label": data.rows_without_label,
            "rows_with_empty_descricao": data.empty_descricao,
            "text": "nome + ' ' + descricao (empty descricao kept as '')",
            "fit_on": "training split only; metrics describe this exact model",
            "split": split_metadata(len(x_train), len(x_test)),
        },
        "metrics": metrics,
        "libraries": library_versions(),
    }
    metadata["training"]["seconds"] = round(time.perf_counter() - started, 2)
    return model_io.save(pipeline, output_dir, metadata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifier.train",
        description="Train the product-category classifier and write "
        f"{model_io.MODEL_FILENAME} + {model_io.METADATA_FILENAME} into OUTPUT.",
    )
    parser.add_argument("--data", type=Path, required=True, help="training CSV (produtos.csv)")
    parser.add_argument("--output", type=Path, required=True, help="directory for the model")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"--data {args.data}: no such file")

    meta = train(args.data, args.output)
    m = meta["metrics"]
    print(f"model   {args.output / model_io.MODEL_FILENAME}  version={meta['version']}")
    print(
        f"split   train={meta['training']['split']['n_train']} "
        f"test={meta['training']['split']['n_test']}  ({meta['training']['seconds']} s)"
    )
    print(f"test    macro_f1={m['macro_f1']:.4f}  accuracy={m['accuracy']:.4f}")
    for label in meta["labels"]:
        c = m["per_class"][label]
        print(
            f"  {label:<10} precision={c['precision']:.4f} recall={c['recall']:.4f} "
            f"f1={c['f1-score']:.4f} n={c['support']:.0f}"
        )
    print(json.dumps({"macro_f1": m["macro_f1"], "accuracy": m["accuracy"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
