"""classifier.convert: a model built elsewhere becomes our artifact, or is refused."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB

from classifier import convert, create_app, train
from classifier import course as course_recipe
from classifier.course import course_model, course_strings
from classifier import model as model_io
from classifier.model import ALLOWED_TYPES, COURSE_TYPES, SHIPPED_TYPES, Model

DATA = Path(__file__).resolve().parents[1] / "data" / "produtos.csv"
LIPSTICK = "Batom líquido matte vermelho, longa duração"


@pytest.fixture(scope="session")
def course(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The course's model.sav: CountVectorizer fit on every row, MultinomialNB on its split."""
    model = course_model(DATA)
    vect, clf = model["vect"], model["clf"]
    path = tmp_path_factory.mktemp("course") / "model.sav"
    path.write_bytes(pickle.dumps({"clf": clf, "vect": vect}))
    return {
        "path": path,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "vect": vect,
        "clf": clf,
    }


@pytest.fixture(scope="session")
def converted(course: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("converted") / "model"
    args = ["--model", str(course["path"]), "--sha256", course["sha256"], "--output", str(output)]
    assert convert.main(args) == convert.EXIT_OK
    return output


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    """Exit code and stderr of the CLI."""
    try:
        code = convert.main([str(a) for a in args])
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def _pickle(path: Path, obj: Any) -> str:
    path.write_bytes(pickle.dumps(obj))
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the course pickle ------------------------------------------------------------


def test_course_pickle_becomes_a_loadable_model(
    converted: Path, course: dict[str, Any]
) -> None:
    model = Model.load(converted)
    assert model.predict(LIPSTICK) == "maquiagem"
    assert model.serving_path == "scikit-learn"
    meta = model.metadata
    assert meta["source"] == "pickle"
    assert meta["converted_from"]["sha256"] == course["sha256"]
    assert meta["converted_from"]["file"] == "model.sav"
    assert meta["labels"] == sorted(train.LABELS)
    assert meta["evaluation"]["split"]["n_test"] == 816
    assert "raw descricao" in meta["pipeline"]["input_note"]
    assert 0.95 < meta["metrics"]["macro_f1"] <= 1.0
    assert set(meta["libraries"]) == {"python", "sklearn", "numpy", "scipy", "skops"}
    assert (converted / "model.skops").read_bytes()[:4] == b"PK\x03\x04"  # skops, not pickle


def test_converted_model_answers_as_the_pickled_one(
    converted: Path, course: dict[str, Any]
) -> None:
    model = Model.load(converted)
    texts = train.load_dataset(DATA).texts[::5]
    expected = [str(x) for x in course["clf"].predict(course["vect"].transform(texts))]
    assert model.predict_many(texts) == expected
    assert [model.predict(t) for t in texts[:50]] == expected[:50]


def test_reported_metrics_are_the_models(converted: Path) -> None:
    model = Model.load(converted)
    _, x_test, _, y_test = train.split_dataset(train.load_dataset(DATA))
    accuracy = sum(p == y for p, y in zip(model.predict_many(x_test), y_test, strict=True))
    assert model.metadata["metrics"]["accuracy"] == pytest.approx(accuracy / len(y_test))


def test_allow_list_adds_exactly_the_course_types(converted: Path) -> None:
    # If this fails after a library upgrade, review the new types before allowing them.
    assert model_io.types_in_file(converted / "model.skops") - SHIPPED_TYPES == COURSE_TYPES
    assert ALLOWED_TYPES == SHIPPED_TYPES | COURSE_TYPES


def test_converted_course_model_serves(
    converted: Path, log_records: list[logging.LogRecord]
) -> None:
    app = create_app({"MODEL_PATH": str(converted), "TESTING": True})
    client = app.test_client()
    version = Model.load(converted).version
    response = client.post("/predizer_categoria", json={"descricao": LIPSTICK})
    assert response.status_code == 200
    assert response.get_json() == {"categoria": "maquiagem", "versao_modelo": version}
    texts = [LIPSTICK, "Console PlayStation 4 com jogo FIFA"]
    response = client.post("/predizer_categorias", json={"descricoes": texts})
    assert response.status_code == 200
    assert all(label in train.LABELS for label in response.get_json()["categorias"])
    paths = [r.getMessage() for r in log_records if r.getMessage().startswith("serving path")]
    assert len(paths) == 2  # create_app's load and the one above: once per load
    assert all("scikit-learn" in line and "CountVectorizer" in line for line in paths)


# --- a pickle is loaded only when pinned ------------------------------------------


class _MakesMarker:
    """Unpickling this creates a directory: proof that the pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


@pytest.fixture
def marker_pickle(tmp_path: Path) -> tuple[Path, str, Path]:
    marker = tmp_path / "pickle-code-ran"
    path = tmp_path / "model.sav"
    return path, _pickle(path, _MakesMarker(marker)), marker


def test_pinned_marker_pickle_does_run(
    marker_pickle: tuple[Path, str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The control for the test below: with the right sha256 the payload runs.
    path, digest, marker = marker_pickle
    code, err = _run(capsys, "--model", path, "--sha256", digest, "--output", tmp_path / "out")
    assert marker.exists()
    assert code == convert.EXIT_REFUSED and "expected a dict" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("sha256", "exit_code", "message"),
    [
        (None, convert.EXIT_REFUSED, "without --sha256: loading a pickle runs any code"),
        ("0" * 64, convert.EXIT_REFUSED, "runs any code it names, so only the pinned file"),
        ("not-a-sha256", convert.EXIT_USAGE, "not 64 hex digits"),
    ],
    ids=["missing", "wrong", "malformed"],
)
def test_unpinned_pickle_is_refused_unloaded(
    marker_pickle: tuple[Path, str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sha256: str | None,
    exit_code: int,
    message: str,
) -> None:
    path, _, marker = marker_pickle
    args: list[str | Path] = ["--model", path, "--output", tmp_path / "out"]
    if sha256 is not None:
        args += ["--sha256", sha256]
    code, err = _run(capsys, *args)
    assert code == exit_code
    assert message in err
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_pickle_with_a_classifier_outside_the_allow_list_is_refused(
    course: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strings, labels = course_strings(DATA)
    clf = LogisticRegression(max_iter=200).fit(course["vect"].transform(strings[::8]), labels[::8])
    path = tmp_path / "model.sav"
    digest = _pickle(path, {"vect": course["vect"], "clf": clf})
    code, err = _run(capsys, "--model", path, "--sha256", digest, "--output", tmp_path / "out")
    assert code == convert.EXIT_REFUSED
    assert "outside the allow-list" in err and "LogisticRegression" in err
    assert not (tmp_path / "out").exists()


def test_pickle_with_other_labels_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vect = CountVectorizer().fit(["cadeira de madeira", "mesa de jantar"])
    clf = MultinomialNB().fit(vect.transform(["cadeira", "mesa"]), ["movel", "livro"])
    path = tmp_path / "model.sav"
    digest = _pickle(path, {"vect": vect, "clf": clf})
    code, err = _run(capsys, "--model", path, "--sha256", digest, "--output", tmp_path / "out")
    assert code == convert.EXIT_REFUSED
    assert "'clf' knows labels ['movel']" in err
    assert not (tmp_path / "out").exists()


class _OffLabelClassifier(ClassifierMixin, BaseEstimator):
    """Claims the service's labels but answers another one."""

    def fit(self, x: Any, y: Any) -> _OffLabelClassifier:
        self.classes_ = sorted(train.LABELS)
        return self

    def predict(self, x: Any) -> list[str]:
        return ["robot"] * x.shape[0]


class _PlainPredictor:
    """Has ``predict`` and ``classes_`` but is no scikit-learn estimator."""

    classes_ = sorted(train.LABELS)

    def predict(self, x: Any) -> list[str]:
        return ["livro"] * x.shape[0]


@pytest.mark.parametrize(
    ("clf", "message"),
    [
        (_OffLabelClassifier().fit(None, None), "answers ['robot'"),
        (_OffLabelClassifier(), "'clf' is not a fitted estimator"),
        (_PlainPredictor(), "'clf' is not a fitted estimator"),
        ("MultinomialNB", "'clf' is a str, not a classifier"),
    ],
    ids=["other-answer", "not-fitted", "not-an-estimator", "not-a-classifier"],
)
def test_pickle_with_an_unusable_classifier_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clf: Any, message: str
) -> None:
    vect = CountVectorizer().fit(["batom vermelho", "livro de bolso"])
    path = tmp_path / "model.sav"
    digest = _pickle(path, {"vect": vect, "clf": clf})
    code, err = _run(capsys, "--model", path, "--sha256", digest, "--output", tmp_path / "out")
    assert code == convert.EXIT_REFUSED
    assert message in err
    assert not (tmp_path / "out").exists()


# --- skops models and other files -------------------------------------------------


def test_skops_model_passes_through_byte_identical(
    model_dir: Path, metadata: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, _ = _run(capsys, "--model", model_dir, "--output", out)
    assert code == convert.EXIT_OK
    for name in ("model.skops", "model.json"):
        assert (out / name).read_bytes() == (model_dir / name).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.skops"]
    # The file itself, pinned: the same result.
    pinned = tmp_path / "pinned"
    args = ["--model", model_dir / "model.skops", "--sha256", metadata["sha256"].upper()]
    code, _ = _run(capsys, *args, "--output", pinned)
    assert code == convert.EXIT_OK
    assert (pinned / "model.skops").read_bytes() == (model_dir / "model.skops").read_bytes()
    assert Model.load(pinned).serving_path == "fast"


def test_skops_model_with_other_pinned_sha256_is_refused(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(capsys, "--model", model_dir, "--sha256", "a" * 64, "--output", tmp_path)
    assert code == convert.EXIT_REFUSED and "--sha256" in err
    assert not (tmp_path / "model.skops").exists()


def test_tampered_skops_model_is_refused(
    model_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = model_copy / "model.skops"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    code, err = _run(capsys, "--model", model_copy, "--output", tmp_path / "out")
    assert code == convert.EXIT_REFUSED
    assert "sha256" in err and "modified" in err
    assert not (tmp_path / "out").exists()


def test_refusal_leaves_an_existing_output_untouched(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = Path(shutil.copytree(model_dir, tmp_path / "existing"))
    bad = Path(shutil.copytree(model_dir, tmp_path / "bad"))
    (bad / "model.skops").write_bytes((bad / "model.skops").read_bytes()[:-100])
    code, _ = _run(capsys, "--model", bad, "--output", existing)
    assert code == convert.EXIT_REFUSED
    for name in ("model.skops", "model.json"):
        assert (existing / name).read_bytes() == (model_dir / name).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "existing"]  # no staging left


def test_skops_model_with_a_type_outside_the_allow_list_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Correctly hashed, so only the allow-list stands in the way.
    model_io.save(LogisticRegression(), tmp_path / "src", {"labels": sorted(train.LABELS)})
    code, err = _run(capsys, "--model", tmp_path / "src", "--output", tmp_path / "out")
    assert code == convert.EXIT_REFUSED and "outside the allow-list" in err
    assert not (tmp_path / "out").exists()


def test_skops_model_without_metadata_is_refused(
    model_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (model_copy / "model.json").unlink()
    code, err = _run(capsys, "--model", model_copy, "--output", tmp_path / "out")
    assert code == convert.EXIT_REFUSED and "model.json not found" in err


@pytest.mark.parametrize(
    "content",
    [
        "nome;descricao;categoria\nBatom;;maquiagem\n".encode(),
        json.dumps({"vect": "x", "clf": "y"}).encode(),
        b"",
        pickle.dumps({"a": 1}, protocol=0),  # no PROTO opcode: not recognised as a pickle
    ],
    ids=["csv", "json", "empty", "pickle-protocol-0"],
)
def test_unknown_file_type_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    args = ["--model", path, "--sha256", hashlib.sha256(content).hexdigest()]
    code, err = _run(capsys, *args, "--output", tmp_path / "out")
    assert code == convert.EXIT_REFUSED
    assert "not a model this tool accepts" in err
    assert "skops model" in err and "pickle" in err
    assert not (tmp_path / "out").exists()


def test_cli_help_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        convert.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--sha256" in out and "Exit status" in out
    code, err = _run(capsys, "--model", tmp_path / "nope.sav", "--output", tmp_path / "out")
    assert code == convert.EXIT_USAGE and "no such file" in err
    code, err = _run(capsys, "--model", tmp_path)
    assert code == convert.EXIT_USAGE and "--output" in err


def test_course_command_writes_the_course_pickle(tmp_path: Path) -> None:
    out = tmp_path / "model.sav"
    assert course_recipe.main(["--data", str(DATA), "--output", str(out)]) == 0
    obj = pickle.loads(out.read_bytes())
    assert set(obj) == {"vect", "clf"}
    assert isinstance(obj["vect"], CountVectorizer) and isinstance(obj["clf"], MultinomialNB)
    assert sorted(obj["clf"].classes_) == sorted(train.LABELS)
