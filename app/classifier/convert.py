"""Turn a model built elsewhere into this service's artifact (model.skops + model.json).

    python -m classifier.convert --model PATH [--sha256 HEX] --output DIR

Runs on the controller only; hosts only ever get the skops file and its metadata.

- ``PATH`` is a skops model (``model.skops`` with ``model.json`` beside it, as
  ``python -m classifier.train`` writes, or their directory): it is checked by the safe
  loader (sha256, type allow-list, serving path) and copied unchanged.
- ``PATH`` is a pickle of ``{"vect": CountVectorizer or TfidfVectorizer, "clf": a
  classifier}``, such as the course's ``model.sav``: loading a pickle runs whatever code
  it names, so it is unpickled only when ``--sha256`` equals its sha256. The two steps are
  joined into a ``Pipeline``, checked on probe texts, evaluated on the project's test
  split and saved with ``classifier.model.save``; the result must then pass the same safe
  loader as any model.

Everything is written to a staging directory beside ``DIR`` and loaded from there with
``Model.load`` before it is moved into ``DIR``, so ``DIR`` only ever receives a model the
service will load.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import re
import shutil
import sys
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sklearn
from sklearn.exceptions import InconsistentVersionWarning, NotFittedError
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from classifier import model as model_io
from classifier import train
from classifier.model import Model, ModelLoadError

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "produtos.csv"

EXIT_OK = 0
EXIT_REFUSED = 1  # the model was refused or could not be converted
EXIT_USAGE = 2  # argparse's code for bad arguments

ACCEPTED_FORMATS = (
    "a skops model (model.skops, a zip archive, with model.json beside it, as "
    "'python -m classifier.train' writes) or a pickle (protocol 2 to 5) of "
    "{'vect': CountVectorizer or TfidfVectorizer, 'clf': classifier}, such as the "
    "course's model.sav, given with --sha256"
)
# One text per class: the converted model must answer one of the service's labels.
PROBE_TEXTS = (
    "Batom líquido matte vermelho, longa duração",
    "Livro de romance, capa dura, 320 páginas",
    "Boneca com acessórios para crianças a partir de 3 anos",
    "Jogo de futebol para PlayStation 4",
)
_ZIP_MAGIC = b"PK\x03\x04"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class ConversionError(RuntimeError):
    """The model was refused; the message says why."""


def detect_format(path: Path) -> str:
    """``"skops"`` or ``"pickle"`` from the file's first bytes (never by unpickling)."""
    with path.open("rb") as f:
        head = f.read(4)
    if head == _ZIP_MAGIC:
        return "skops"
    # PROTO opcode, then the protocol number: every pickle Python 3 writes by default.
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    raise ConversionError(f"{path} is not a model this tool accepts: expected {ACCEPTED_FORMATS}")


def convert(
    model_path: Path, output: Path, sha256: str | None = None, data: Path = DEFAULT_DATA
) -> Model:
    """Check and convert ``model_path`` into ``output``; return the model as loaded.

    Raises ``ConversionError`` (nothing written to ``output``) if the model is refused.
    """
    source, _ = model_io.resolve_paths(model_path)
    if not source.is_file():
        raise ConversionError(f"model file {source} not found")
    if sha256 is not None:
        sha256 = sha256.lower()
    kind = detect_format(source)
    output.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{output.name}.convert-", dir=output.parent))
    try:
        if kind == "skops":
            _stage_skops(source, stage, sha256)
        else:
            _stage_pickle(source, stage, sha256, data)
        try:
            model = Model.load(stage)
        except ModelLoadError as exc:
            raise ConversionError(f"{source}: the service's loader refuses it: {exc}") from exc
        output.mkdir(parents=True, exist_ok=True)
        # Same filesystem, so each move is atomic; metadata last, as model.save does.
        for name in (model_io.MODEL_FILENAME, model_io.METADATA_FILENAME):
            os.replace(stage / name, output / name)
        return model
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _stage_skops(source: Path, stage: Path, sha256: str | None) -> None:
    """Copy the model and its metadata as they are; ``convert`` loads the copies."""
    model_file, metadata_file = model_io.resolve_paths(source)
    if not metadata_file.is_file():
        raise ConversionError(
            f"{metadata_file} not found: a skops model needs its metadata beside it "
            "(as 'python -m classifier.train' writes them)"
        )
    shutil.copyfile(model_file, stage / model_io.MODEL_FILENAME)
    shutil.copyfile(metadata_file, stage / model_io.METADATA_FILENAME)
    # The staged copy is what gets published, so that is what the hash must describe.
    digest = model_io.sha256_file(stage / model_io.MODEL_FILENAME)
    if sha256 is not None and digest != sha256:
        raise ConversionError(f"sha256 of {model_file} is {digest}, not {sha256} (--sha256)")


def _stage_pickle(source: Path, stage: Path, sha256: str | None, data: Path) -> None:
    if sha256 is None:
        raise ConversionError(
            f"refusing to load {source} without --sha256: loading a pickle runs any code it "
            "names, so it is only loaded when its sha256 equals the one published by whoever "
            "built it (compare it with 'sha256sum' against a source you trust)"
        )
    raw = source.read_bytes()  # hash and unpickle the same bytes: no swap in between
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise ConversionError(
            f"refusing to load {source}: its sha256 is {digest}, not {sha256} (--sha256); "
            "loading a pickle runs any code it names, so only the pinned file is loaded"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            obj = pickle.loads(raw)
        except Exception as exc:  # a damaged or foreign pickle fails in many ways
            raise ConversionError(f"cannot unpickle {source}: {exc}") from exc
    pickled_with = sorted(
        {
            w.message.original_sklearn_version
            for w in caught
            if isinstance(w.message, InconsistentVersionWarning)
        }
    )
    pipeline = _pipeline_from(obj, source)
    _check_probes(pipeline)

    dataset = train.load_dataset(data)
    _, x_test, _, y_test = train.split_dataset(dataset)
    vectorizer, classifier = pipeline.steps[0][1], pipeline.steps[1][1]
    metadata: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": "pickle",
        "converted_from": {
            "file": source.name,
            "sha256": digest,
            "format": "pickle of {'vect', 'clf'}",
            # sklearn warns on unpickling only when the versions differ.
            "pickled_with_sklearn": ", ".join(pickled_with) or sklearn.__version__,
            "unpickle_warnings": [str(w.message) for w in caught],
        },
        "labels": sorted(str(label) for label in classifier.classes_),
        "pipeline": {
            "description": (
                f"{type(vectorizer).__name__} -> {type(classifier).__name__}, as pickled; "
                "input: raw text"
            ),
            "vect": _plain_params(vectorizer),
            "clf": _plain_params(classifier),
            "vocabulary_size": len(vectorizer.vocabulary_),
            "input_note": (
                "The course preprocesses its training text (lower-case, Portuguese stop "
                "words removed, \\w+ tokens) before the vectorizer, but its service passes "
                "the raw descricao to vect.transform; this pipeline likewise sees "
                "un-preprocessed text, only what the vectorizer itself does applies."
            ),
        },
        "training": {
            "fit_on": "unknown: trained elsewhere",
        },
        "evaluation": {
            "data_file": data.name,
            "data_sha256": dataset.sha256,
            "text": "nome + ' ' + descricao (empty descricao kept as ''), raw",
            "split": train.split_metadata(len(dataset.texts) - len(x_test), len(x_test)),
            "caveat": (
                "The same test split as train.py, but this model was not fit on its "
                "training split: the course fits on its own split of the same CSV (rows "
                "without descricao dropped), so some of these test rows may have been "
                "training rows and the metrics may be optimistic."
            ),
        },
        "metrics": train.evaluate(pipeline, x_test, y_test),
        "libraries": train.library_versions(),
    }
    model_io.save(pipeline, stage, metadata)


def _pipeline_from(obj: Any, source: Path) -> Pipeline:
    if not isinstance(obj, dict) or not {"vect", "clf"} <= obj.keys():
        raise ConversionError(
            f"{source} holds a {type(obj).__name__}"
            + (f" with keys {sorted(map(str, obj))}" if isinstance(obj, dict) else "")
            + ", expected a dict with 'vect' (the vectorizer) and 'clf' (the classifier)"
        )
    vectorizer, classifier = obj["vect"], obj["clf"]
    # Exact types: a subclass could change the analyzer; the allow-list refuses it anyway.
    if type(vectorizer) not in (CountVectorizer, TfidfVectorizer):
        raise ConversionError(
            f"'vect' is a {type(vectorizer).__name__}, expected CountVectorizer or "
            "TfidfVectorizer"
        )
    if not hasattr(classifier, "predict"):
        raise ConversionError(f"'clf' is a {type(classifier).__name__}, not a classifier")
    for name, step in (("vect", vectorizer), ("clf", classifier)):
        try:
            check_is_fitted(step)
        # TypeError/AttributeError: not a scikit-learn estimator at all.
        except (NotFittedError, TypeError, AttributeError) as exc:
            raise ConversionError(f"'{name}' is not a fitted estimator: {exc}") from exc
    unknown = sorted(str(c) for c in getattr(classifier, "classes_", []) if c not in train.LABELS)
    if unknown or not hasattr(classifier, "classes_"):
        raise ConversionError(
            f"'clf' knows labels {unknown or '(none)'}; the service answers only "
            f"{', '.join(sorted(train.LABELS))}"
        )
    return Pipeline([("vect", vectorizer), ("clf", classifier)])


def _check_probes(pipeline: Pipeline) -> None:
    try:
        predicted = [str(label) for label in pipeline.predict(list(PROBE_TEXTS))]
    except Exception as exc:  # the two steps may not fit together
        raise ConversionError(f"the pipeline cannot classify a probe text: {exc}") from exc
    wrong = [label for label in predicted if label not in train.LABELS]
    if wrong:
        raise ConversionError(f"the pipeline answers {wrong} for probe texts")


def _plain_params(estimator: Any) -> dict[str, Any]:
    """JSON-friendly parameters: numbers, strings, booleans and None as they are."""
    plain: dict[str, Any] = {}
    for key, value in sorted(estimator.get_params().items()):
        if value is None or isinstance(value, bool | int | float | str):
            plain[key] = value
        elif isinstance(value, tuple | list) and all(isinstance(v, int | str) for v in value):
            plain[key] = list(value)
        else:
            plain[key] = getattr(value, "__name__", type(value).__name__)
    return plain


def _sha256_arg(value: str) -> str:
    if not _HEX64.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not 64 hex digits")
    return value.lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifier.convert",
        description=(
            "Check a model built elsewhere and write it as "
            f"{model_io.MODEL_FILENAME} + {model_io.METADATA_FILENAME} into OUTPUT. "
            f"Accepted: {ACCEPTED_FORMATS}."
        ),
        epilog=(
            f"Exit status: {EXIT_OK} converted, {EXIT_REFUSED} model refused (nothing "
            f"written), {EXIT_USAGE} bad arguments."
        ),
    )
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="model.skops (or its directory), or a pickle such as model.sav",
    )
    parser.add_argument(
        "--sha256",
        type=_sha256_arg,
        help="sha256 the file must have; required for a pickle, optional for skops",
    )
    parser.add_argument("--output", type=Path, required=True, help="directory for the model")
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="CSV to evaluate a pickled model on (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if not args.model.exists():
        parser.error(f"--model {args.model}: no such file or directory")
    if not args.data.is_file():
        parser.error(f"--data {args.data}: no such file")

    try:
        model = convert(args.model, args.output, args.sha256, args.data)
    except (ConversionError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    meta = model.metadata
    print(f"model   {args.output / model_io.MODEL_FILENAME}  version={model.version}")
    print(
        f"source  {meta.get('source', 'skops')}  labels={','.join(model.labels)}  "
        f"serving path={model.serving_path}"
    )
    metrics = meta.get("metrics", {})
    if "macro_f1" in metrics:
        print(f"test    macro_f1={metrics['macro_f1']:.4f}  accuracy={metrics['accuracy']:.4f}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
