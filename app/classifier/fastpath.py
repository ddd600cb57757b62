"""The serving path: the trained pipeline compiled into plain dict/list lookups.

scikit-learn's ``Pipeline.predict`` costs ~1 ms for one short text, almost all of it
input validation and sparse-matrix bookkeeping. ``CompiledPipeline`` computes the same
decision scores with a vocabulary dict and per-class coefficient lists:

    tokens  = re.findall(token_pattern, text.lower())       # TfidfVectorizer's analyzer
    w[t]    = (1 + log(count[t])) * idf[t]                  # sublinear tf, idf
    x[t]    = w[t] / sqrt(sum(w**2))                        # l2 norm
    score_c = sum(x[t] * coef[c][t]) + intercept[c]         # LinearSVC.decision_function
    label   = classes[argmax(score)]

in pure Python for a text with few distinct terms (a form's description: ~5 µs), with
numpy for longer ones, where its fixed cost is paid back.

The tables are derived at load time from the pipeline that ``Model.load`` has already
verified (sha256, type allow-list), so there is still one artifact and one hash, no second
file that could drift from it. Only the configurations computed exactly here are accepted
(``UnsupportedPipeline`` otherwise), and ``verify`` compares both paths on probe texts,
so a library upgrade that changes the maths fails at startup instead of serving
different answers.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from operator import mul
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model._base import LinearClassifierMixin
from scipy.sparse import csr_matrix
from sklearn.pipeline import Pipeline

__all__ = ["CompiledPipeline", "UnsupportedPipeline"]

# Vectorizer settings whose maths this module reproduces; other values are refused.
_REQUIRED_PARAMS: dict[str, Any] = {
    "input": "content",
    "analyzer": "word",
    "preprocessor": None,
    "tokenizer": None,
    "strip_accents": None,
    "ngram_range": (1, 1),
    "norm": "l2",
    "dtype": np.float64,
}
_BOOL_PARAMS = ("lowercase", "binary", "use_idf", "sublinear_tf")

# Scores of the two paths may differ by float rounding (summation order) only.
_TOLERANCE = 1e-9


class UnsupportedPipeline(ValueError):
    """The pipeline is not one this module can compute exactly."""


class CompiledPipeline:
    """Decision scores and labels of a fitted TfidfVectorizer + linear classifier."""

    # Distinct known terms above which numpy's fixed cost (~5 µs) beats Python's
    # per-term loop (measured crossover ~20 on CPython 3.13); both paths are exact.
    numpy_above = 24
    # Texts from which predict_many scores the batch as one sparse matrix: its fixed cost
    # (~50 µs) is paid back from ~16 short texts on (measured); labels are the same.
    batch_from = 16

    def __init__(self, pipeline: Any) -> None:
        vectorizer, classifier = _split(pipeline)
        self.labels: list[str] = [str(label) for label in classifier.classes_]
        self._lowercase = bool(vectorizer.lowercase)
        self._binary = bool(vectorizer.binary)
        self._sublinear_tf = bool(vectorizer.sublinear_tf)
        # sklearn's own tokenizer: the same compiled pattern, findall.
        self._findall = vectorizer.build_tokenizer()
        # sklearn drops stop words before the vocabulary lookup, so a stop word can never
        # be counted; fitting already leaves them out, this keeps it true for any vocabulary.
        stop_words = vectorizer.get_stop_words() or frozenset()
        self._vocabulary: dict[str, int] = {
            term: int(index)
            for term, index in vectorizer.vocabulary_.items()
            if term not in stop_words
        }
        n_features = len(vectorizer.vocabulary_)
        self._idf: list[float] = (
            vectorizer.idf_.tolist() if vectorizer.use_idf else [1.0] * n_features
        )
        coef = np.asarray(classifier.coef_, dtype=np.float64)
        if coef.shape[1] != n_features or len(self._idf) != n_features:
            raise UnsupportedPipeline(
                f"classifier has {coef.shape[1]} features, vectorizer {n_features}"
            )
        # One list of floats per decision function (one row for a binary classifier) for
        # short texts; the same numbers as arrays for long ones.
        self._coef: list[list[float]] = [row.tolist() for row in coef]
        self._coef_t = np.ascontiguousarray(coef.T)
        self._idf_array = np.asarray(self._idf, dtype=np.float64)
        self._intercept: list[float] = (
            np.broadcast_to(np.asarray(classifier.intercept_, dtype=np.float64), len(coef))
            .astype(float)
            .tolist()
        )
        self._intercept_array = np.asarray(self._intercept, dtype=np.float64)
        if len(self._coef) == 1 and len(self.labels) != 2:
            raise UnsupportedPipeline("one decision function needs exactly two classes")
        if len(self._coef) > 1 and len(self._coef) != len(self.labels):
            raise UnsupportedPipeline("one decision function per class expected")

    def scores(self, text: str) -> list[float]:
        """What ``pipeline.decision_function([text])[0]`` gives, as a list."""
        counts = self._counts(text)
        if not counts:  # an all-zero row: sklearn leaves it unnormalised, scores = intercept
            return list(self._intercept)
        if len(counts) > self.numpy_above:
            return self._scores_numpy(counts)
        return self._scores_python(counts)

    def _counts(self, text: str) -> dict[int, int]:
        """Term index -> count: TfidfVectorizer's analyzer and CountVectorizer's counting."""
        if self._lowercase:
            text = text.lower()
        # map and Counter loop in C: a long description has hundreds of tokens.
        counts = Counter(map(self._vocabulary.get, self._findall(text)))
        counts.pop(None, None)  # tokens outside the vocabulary
        return counts

    def _scores_python(self, counts: dict[int, int]) -> list[float]:
        idf = self._idf
        if self._binary:
            weights = [idf[i] for i in counts]
        elif self._sublinear_tf:
            log = math.log
            weights = [(log(n) + 1.0) * idf[i] for i, n in counts.items()]
        else:
            weights = [n * idf[i] for i, n in counts.items()]
        norm = math.sqrt(sum(map(mul, weights, weights)))  # > 0: every idf is >= 1
        x = [w / norm for w in weights]
        indices = list(counts)
        return [
            sum(map(mul, x, map(row.__getitem__, indices))) + b
            for row, b in zip(self._coef, self._intercept, strict=True)
        ]

    def _scores_numpy(self, counts: dict[int, int]) -> list[float]:
        """The same sums, vectorised: cheaper once a text has a few dozen distinct terms."""
        indices = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
        weights = self._idf_array[indices]
        if not self._binary:
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            if self._sublinear_tf:
                np.log(tf, out=tf)
                tf += 1.0
            weights *= tf
        weights /= math.sqrt(weights @ weights)
        return (weights @ self._coef_t[indices] + self._intercept_array).tolist()

    def predict(self, text: str) -> str:
        scores = self.scores(text)
        if len(scores) == 1:
            return self.labels[1] if scores[0] > 0 else self.labels[0]
        # max() keeps the first of equal scores, as numpy's argmax does.
        return self.labels[max(range(len(scores)), key=scores.__getitem__)]

    def predict_many(self, texts: Sequence[str]) -> list[str]:
        if len(texts) < self.batch_from:
            predict = self.predict
            return [predict(text) for text in texts]
        scores = self.scores_many(texts)
        labels = self.labels
        if scores.shape[1] == 1:
            return [labels[1] if s > 0 else labels[0] for s in scores[:, 0].tolist()]
        return [labels[i] for i in scores.argmax(axis=1).tolist()]  # first of equal maxima

    def scores_many(self, texts: Sequence[str]) -> np.ndarray:
        """``pipeline.decision_function(texts)`` as an (n, k) array, k = decision functions.

        The per-text work is the counting; weights, norms and the products with the
        coefficients are done once for the whole batch, as scikit-learn does.
        """
        indices: list[int] = []
        tfs: list[int] = []
        indptr = [0]
        counts_of = self._counts
        for text in texts:
            counts = counts_of(text)
            indices += counts.keys()
            tfs += counts.values()
            indptr.append(len(indices))
        index_array = np.array(indices, dtype=np.intp)
        weights = self._idf_array[index_array]
        if not self._binary:
            tf = np.array(tfs, dtype=np.float64)
            if self._sublinear_tf:
                np.log(tf, out=tf)
                tf += 1.0
            weights *= tf
        shape = (len(texts), len(self._idf_array))
        squares = csr_matrix((weights * weights, index_array, indptr), shape=shape).sum(axis=1)
        norms = np.sqrt(np.asarray(squares, dtype=np.float64).ravel())
        norms[norms == 0.0] = 1.0  # an all-zero row stays zero, as in sklearn
        weights /= np.repeat(norms, np.diff(indptr))
        x = csr_matrix((weights, index_array, indptr), shape=shape)
        return np.asarray(x @ self._coef_t) + self._intercept_array

    def verify(self, pipeline: Any, texts: Sequence[str] | None = None) -> None:
        """Raise ``UnsupportedPipeline`` unless this and ``pipeline`` agree on ``texts``.

        Every way of computing (Python, numpy, whole batch) is checked on every text. By
        default the texts are probes built from the vocabulary: repeated terms (tf), upper
        case, punctuation, stop words, unknown words, few and many distinct terms.
        """
        texts = list(texts) if texts is not None else self._probe_texts(pipeline)
        expected_scores = np.asarray(pipeline.decision_function(texts), dtype=np.float64)
        expected_labels = [str(label) for label in pipeline.predict(texts)]
        batch_scores = self.scores_many(texts)
        for i, (text, expected, label) in enumerate(
            zip(texts, expected_scores, expected_labels, strict=True)
        ):
            want = np.atleast_1d(expected).tolist()
            counts = self._counts(text)
            candidates = [self.scores(text), batch_scores[i].tolist()]
            if counts:
                candidates += [self._scores_python(counts), self._scores_numpy(counts)]
            for got in candidates:
                if len(got) != len(want) or max(
                    abs(a - b) for a, b in zip(got, want, strict=True)
                ) > _TOLERANCE:
                    raise UnsupportedPipeline(
                        f"fast path scores {got} differ from scikit-learn's {want} for {text!r}"
                    )
            if self.predict(text) != label:
                raise UnsupportedPipeline(f"fast path label differs for {text!r}")
        if self.predict_many(texts * self.batch_from) != expected_labels * self.batch_from:
            raise UnsupportedPipeline("fast path labels of a batch differ")

    def _probe_texts(self, pipeline: Any) -> list[str]:
        terms = sorted(self._vocabulary)
        sample = terms[:: max(1, len(terms) // 60)]
        stop = sorted(pipeline.steps[0][1].get_stop_words() or ())[:5]
        return [
            "",
            "xqzv wkjy",  # unknown words only
            " ".join(stop),
            ", ".join(sample[:10]) + "!",
            " ".join(t.upper() for t in sample[10:20]) + " " + " ".join(sample[10:13] * 3),
            "; ".join(sample) + " " + " ".join(stop) + " " + " ".join(sample[:5] * 2),
        ]


def _split(pipeline: Any) -> tuple[TfidfVectorizer, Any]:
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise UnsupportedPipeline("expected a Pipeline of a vectorizer and a classifier")
    vectorizer, classifier = pipeline.steps[0][1], pipeline.steps[1][1]
    # Exact types: a subclass may override the analyzer or the decision function.
    if type(vectorizer) is not TfidfVectorizer:
        raise UnsupportedPipeline(f"unsupported vectorizer {type(vectorizer).__name__}")
    if not isinstance(classifier, LinearClassifierMixin) or not hasattr(classifier, "coef_"):
        raise UnsupportedPipeline(f"unsupported classifier {type(classifier).__name__}")
    for method in ("decision_function", "predict"):
        if getattr(type(classifier), method) is not getattr(LinearClassifierMixin, method):
            raise UnsupportedPipeline(f"{type(classifier).__name__} has its own {method}")
    params = vectorizer.get_params()
    for key, value in _REQUIRED_PARAMS.items():
        if params[key] != value:
            raise UnsupportedPipeline(f"vectorizer {key}={params[key]!r} is not supported")
    for key in _BOOL_PARAMS:
        if not isinstance(params[key], bool):
            raise UnsupportedPipeline(f"vectorizer {key}={params[key]!r} is not supported")
    if re.compile(vectorizer.token_pattern).groups > 1:
        raise UnsupportedPipeline("token_pattern has more than one group")
    if not hasattr(vectorizer, "vocabulary_") or (
        vectorizer.use_idf and not hasattr(vectorizer, "idf_")
    ):
        raise UnsupportedPipeline("vectorizer is not fitted")
    return vectorizer, classifier
