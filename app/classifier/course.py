"""The course's model, rebuilt: its reference recipe on the same CSV, as a ``model.sav``.

For comparisons (``make bench`` serves it as the baseline) and for the conversion tests. The
course notebook's steps, without pandas or NLTK: ``nome + descricao`` (no separator, as the
course), rows with an empty field dropped, lower-case, Portuguese stop words dropped, tokens of
``\\w+``; ``CountVectorizer`` fit on every row, ``MultinomialNB`` on its ``train_test_split``
(``test_size=0.2, random_state=10``); pickled as ``{"vect": ..., "clf": ...}``.

    python -m classifier.course --data data/produtos.csv --output model.sav
"""

from __future__ import annotations

import argparse
import csv
import pickle
import re
from pathlib import Path
from typing import Any

from sklearn.feature_extraction.text import CountVectorizer
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import MultinomialNB

from classifier.train import stop_words

__all__ = ["course_strings", "course_model", "main"]


def course_strings(data: Path) -> tuple[list[str], list[str]]:
    """The course's training texts and labels."""
    with data.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    # pandas: nome + descricao is NaN when either is empty, and dropna drops the row.
    rows = [r for r in rows if r["nome"] and r["descricao"] and r["categoria"]]
    stop = set(stop_words())  # NLTK's Portuguese list
    strings = []
    for row in rows:
        words = (row["nome"] + row["descricao"]).lower().split()
        kept = " ".join(w for w in words if w not in stop)
        strings.append(" ".join(re.findall(r"\w+", kept)))  # nltk.RegexpTokenizer(r"\w+")
    return strings, [r["categoria"] for r in rows]


def course_model(data: Path) -> dict[str, Any]:
    """``{"vect": CountVectorizer, "clf": MultinomialNB}``, fitted as the course fits them."""
    strings, labels = course_strings(data)
    x_train, _, y_train, _ = train_test_split(strings, labels, test_size=0.2, random_state=10)
    vect = CountVectorizer().fit(strings)
    clf = MultinomialNB().fit(vect.transform(x_train), y_train)
    return {"vect": vect, "clf": clf}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m classifier.course", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="where to write the pickle (model.sav)")
    parser.add_argument("--data", type=Path, required=True, help="the CSV (data/produtos.csv)")
    args = parser.parse_args(argv)
    args.output.write_bytes(pickle.dumps(course_model(args.data)))
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
