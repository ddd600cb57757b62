"""Micro-benchmark: scikit-learn's pipeline vs the compiled serving path, in one run.

    python -m classifier.bench                      # trains a temporary model from the CSV
    python -m classifier.bench --model path/to/model --data data/produtos.csv

Prints microseconds per call of ``Model.predict_many_sklearn([text])`` (scikit-learn) and
``Model.predict(text)`` (the serving path: the fast one unless the model can't be compiled)
for texts of several lengths, then batch figures: both paths on 1000 rows, and HTTP
in-process (Flask test client, no network) for single requests vs one batch request.
Each figure is CPU time (``time.process_time``), the fastest of ``--repeat`` rounds: as
``timeit`` argues, slower rounds measure other processes sharing the machine, not the code.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from classifier.model import Model

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "produtos.csv"
SHORT_TEXT = "Batom líquido matte vermelho, longa duração"


def _per_call_us(func: Callable[[], object], calls: int, repeat: int) -> float:
    """Best over ``repeat`` rounds of the mean CPU time of one of ``calls`` calls, in µs.

    CPU time of this process, not wall time: on a shared machine, time spent waiting for
    a core is not the code's cost.
    """
    rounds = []
    for _ in range(repeat):
        started = time.process_time()
        for _ in range(calls):
            func()
        rounds.append((time.process_time() - started) / calls * 1e6)
    return min(rounds)


def _calls_for(us_guess: float, budget_s: float = 0.05) -> int:
    return max(3, int(budget_s * 1e6 / max(us_guess, 1.0)))


def run(model_dir: Path, data: Path, repeat: int) -> None:
    from classifier import create_app, train

    model = Model.load(model_dir)
    dataset = train.load_dataset(data)
    texts = dataset.texts  # nome + " " + descricao, as trained
    by_length = sorted(texts, key=len)
    vocabulary = model._pipeline.steps[0][1].vocabulary_
    print(
        f"model {model.version}: {len(vocabulary)} terms, {len(model.labels)} classes, "
        f"serving path {model.serving_path}; CPU time, best of {repeat} rounds"
    )
    print(f"{'text':<28}{'chars':>7}{'sklearn µs/call':>17}{'fast µs/call':>14}{'ratio':>8}")
    cases = [
        ("short (form-like)", SHORT_TEXT),
        ("median training row", by_length[len(by_length) // 2]),
        ("95th-percentile row", by_length[int(len(by_length) * 0.95)]),
    ]
    for name, text in cases:
        assert model.predict(text) == model.predict_many_sklearn([text])[0]
        slow = _per_call_us(lambda t=text: model.predict_many_sklearn([t]), 50, repeat)
        fast_guess = _per_call_us(lambda t=text: model.predict(t), 3, 1)
        fast = _per_call_us(lambda t=text: model.predict(t), _calls_for(fast_guess), repeat)
        print(f"{name:<28}{len(text):>7}{slow:>17.1f}{fast:>14.1f}{slow / fast:>7.1f}x")

    # Every row, one call per row (no batching on either side); two rounds at most, as a
    # round of scikit-learn calls takes seconds.
    rounds = min(repeat, 2)

    def every_row_sklearn() -> None:
        for text in texts:
            model.predict_many_sklearn([text])

    def every_row_fast() -> None:
        for text in texts:
            model.predict(text)

    slow = _per_call_us(every_row_sklearn, 1, rounds) / len(texts)
    fast = _per_call_us(every_row_fast, 1, rounds) / len(texts)
    mean_chars = sum(map(len, texts)) / len(texts)
    name = f"every row ({len(texts)}), mean"
    print(f"{name:<28}{mean_chars:>7.0f}{slow:>17.1f}{fast:>14.1f}{slow / fast:>7.1f}x")

    batch = texts[::4][:1000]  # every 4th row: all classes and lengths (the CSV is grouped)
    slow = _per_call_us(lambda: model.predict_many_sklearn(batch), 1, repeat) / len(batch)
    fast = _per_call_us(lambda: model.predict_many(batch), 1, repeat) / len(batch)
    print(
        f"\nbatch of {len(batch)} rows, µs per text: sklearn predict {slow:.1f}, "
        f"fast predict_many {fast:.1f} ({slow / fast:.1f}x)"
    )

    # The whole request in process: routing, JSON, validation, logging (at WARNING,
    # so the per-request log line does not dominate).
    app = create_app({"MODEL_PATH": str(model_dir), "LOG_LEVEL": "WARNING"})
    client = app.test_client()
    max_chars = app.config["MAX_DESCRIPTION_CHARS"]
    rows = [t for t in texts if len(t) <= max_chars][::4][: len(batch)]  # the API's limit
    for label, items in [("short texts", [SHORT_TEXT] * len(rows)), ("training rows", rows)]:
        single_items = items[:200]

        def singles(items: list[str] = single_items) -> None:
            for text in items:
                response = client.post("/predizer_categoria", json={"descricao": text})
                assert response.status_code == 200

        def one_batch(items: list[str] = items) -> None:
            response = client.post("/predizer_categorias", json={"descricoes": items})
            assert response.status_code == 200

        single = _per_call_us(singles, 1, repeat) / len(single_items)
        batched = _per_call_us(one_batch, 1, repeat) / len(items)
        body = len(json.dumps({"descricoes": items}).encode())
        print(
            f"HTTP in process, {label}: single request {single:.1f} µs/description, "
            f"batch of {len(items)} ({body / 1e6:.2f} MB) {batched:.1f} µs/description "
            f"({single / batched:.1f}x)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifier.bench",
        description="Time scikit-learn's pipeline against the compiled serving path.",
    )
    parser.add_argument("--model", type=Path, help="model directory (default: train one)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="produtos.csv")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per figure")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"--data {args.data}: no such file")
    if args.model is not None:
        run(args.model, args.data, args.repeat)
        return 0
    from classifier import train

    with tempfile.TemporaryDirectory() as tmp:
        train.train(args.data, Path(tmp))
        run(Path(tmp), args.data, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
