"""Benchmark: onnxruntime vs the native library's ``predict``, for 1 row and for 1,000 rows.

Usage: .venv/bin/python bench/onnx_latency.py [--rounds 10] [--calls-1 300] [--calls-1000 30]

Trains, on iris-like data (4 numeric features, 3 classes, 3,000 rows from scikit-learn's
``make_classification``), a scikit-learn decision tree, a random forest (100 trees), a logistic
regression and, when ``xgboost`` is importable, an XGBoost classifier (100 trees); converts each
to ONNX the way Homeport's built-ins do (skl2onnx, ZipMap probabilities by default; onnxmltools
for XGBoost) and times, on the same float32 rows:

* ``native``: ``model.predict(rows)`` (scikit-learn; XGBoost's sklearn API with ``n_jobs=1``);
* ``onnx``: ``session.run`` of that ``model.onnx`` with one intra-op thread, as the ONNX image
  and the exported server create it (label *and* probabilities);
* ``onnx/nozipmap`` (scikit-learn only): the same model converted with ``zipmap=False``
  (probabilities as a tensor rather than a list of dicts);
* ``handler``: the ONNX image's whole in-process request path, ``transform_fn`` from a CSV body
  to a JSON body (parse, run, encode), for scale.

Rounds are interleaved: each round times every side ``--calls-N`` times in ABBA order (the order
reverses every other round, so drift on a shared machine hits every side alike). Prints per-side
medians and p90 over all calls, and RATIO lines: the median [min–max] of the per-round ratios of
medians, side ÷ native (below 1: ONNX is faster).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# bench/packaging.py would shadow the `packaging` distribution that xgboost imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
HANDLER = ROOT / "homeport" / "builtins" / "images" / "onnx" / "onnx_handler.py"
FEATURES = 4


def load_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("onnx_handler", HANDLER)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {HANDLER}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["onnx_handler"] = module
    spec.loader.exec_module(module)
    return module


def session(onnx_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])


def models(x: np.ndarray, y: np.ndarray) -> list[tuple[str, Any, dict[str, bytes]]]:
    """(name, fitted native model, {side: model.onnx bytes})."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    out: list[tuple[str, Any, dict[str, bytes]]] = []
    sample = x[:1]
    for name, est in (
        ("sklearn decision tree", DecisionTreeClassifier(random_state=0)),
        ("sklearn random forest (100)", RandomForestClassifier(100, max_depth=10, random_state=0)),
        ("sklearn logistic regression", LogisticRegression(max_iter=500)),
    ):
        est.fit(x, y)
        onnx_default = to_onnx(est, sample, target_opset=17).SerializeToString()
        onnx_tensor = to_onnx(est, sample, target_opset=17, options={"zipmap": False}).SerializeToString()
        out.append((name, est, {"onnx": onnx_default, "onnx/nozipmap": onnx_tensor}))
    try:
        import xgboost
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as exc:
        print(f"XGBoost skipped: {exc}")
        return out
    booster = xgboost.XGBClassifier(n_estimators=100, max_depth=6, n_jobs=1, random_state=0).fit(x, y)
    onnx_xgb = convert_xgboost(
        booster, initial_types=[("input", FloatTensorType([None, FEATURES]))], target_opset=15
    ).SerializeToString()
    out.append((f"xgboost {xgboost.__version__} (100)", booster, {"onnx": onnx_xgb}))
    return out


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def bench_model(
    name: str,
    native: Any,
    onnx_models: dict[str, bytes],
    rows: np.ndarray,
    calls: int,
    rounds: int,
    h: ModuleType,
    work: Path,
) -> None:
    sides: dict[str, Callable[[], Any]] = {"native": lambda: native.predict(rows)}
    for side, blob in onnx_models.items():
        sess = session(blob)
        feed = {sess.get_inputs()[0].name: rows}
        sides[side] = lambda sess=sess, feed=feed: sess.run(None, feed)
        if side == "onnx":
            # The served path: a CSV body in, a JSON body out (model_fn loads the same bytes from disk).
            (work / "model.onnx").write_bytes(blob)
            handler_model = h.load_model(str(work), threads=1)
            body = "\n".join(",".join(f"{v:.4f}" for v in row) for row in rows)
            sides["handler"] = lambda m=handler_model, b=body: h.transform_fn(m, b, "text/csv", None)
    # Report order: native, the ONNX sessions, then the whole handler path.
    sides = {side: sides[side] for side in sorted(sides, key=lambda s: (s == "handler", s != "native"))}
    for fn in sides.values():  # warm up: first calls allocate
        for _ in range(5):
            fn()
    samples: dict[str, list[float]] = {side: [] for side in sides}
    medians: dict[str, list[float]] = {side: [] for side in sides}
    order = list(sides)
    for r in range(rounds):
        for side in order if r % 2 == 0 else list(reversed(order)):
            fn = sides[side]
            times = []
            for _ in range(calls):
                t0 = time.perf_counter_ns()
                fn()
                times.append((time.perf_counter_ns() - t0) / 1e3)
            samples[side] += times
            medians[side].append(statistics.median(times))
    print(f"\n{name}, {len(rows)} row(s) ({rounds} rounds x {calls} calls per side)")
    for side, values in samples.items():
        print(f"  {side:<14} median {statistics.median(values):10.1f} us   p90 {p90(values):10.1f} us")
    for side in sides:
        if side == "native":
            continue
        ratios = [a / b for a, b in zip(medians[side], medians["native"], strict=True)]
        print(
            f"  RATIO {side} / native: {statistics.median(ratios):.3f}x "
            f"[{min(ratios):.3f}-{max(ratios):.3f}]"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls-1", type=int, default=300, help="calls per side per round, 1 row")
    parser.add_argument("--calls-1000", type=int, default=30, help="calls per side per round, 1,000 rows")
    args = parser.parse_args()

    import onnxruntime
    import sklearn
    from sklearn.datasets import make_classification

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cpus)")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
        f"onnxruntime {onnxruntime.__version__}"
    )
    x, y = make_classification(
        n_samples=3000, n_features=FEATURES, n_informative=3, n_redundant=1, n_classes=3,
        n_clusters_per_class=1, random_state=0,
    )  # fmt: skip
    x = x.astype(np.float32)
    h = load_handler()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="onnx-bench-") as work:
        for name, native, onnx_models in models(x, y):
            for count, calls in ((1, args.calls_1), (1000, args.calls_1000)):
                rows = x[rng.choice(len(x), size=count, replace=False)]
                bench_model(name, native, onnx_models, rows, calls, args.rounds, h, Path(work))
    print(f"\nload average at end:   {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
