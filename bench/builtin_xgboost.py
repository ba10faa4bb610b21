"""Built-in XGBoost training vs xgboost called directly, on the same data and hyperparameters.

(a) the image's ``train`` (``homeport/builtins/images/xgboost/train``) in a subprocess with
    ``SAGEMAKER_BASE_DIR`` set, the way the container runs it (minus the container): hyperparameter
    validation, CSV loading, ``xgb.train`` with the evaluation lines, ``xgboost-model`` and
    ``model.onnx`` written;
(b) a subprocess running plain xgboost: ``numpy.loadtxt`` the same CSV files, ``DMatrix``,
    ``xgb.train`` with the same params and evals (printing the same lines), ``save_model``.

Rounds alternate (a, b, a, b, ...); the medians and their ratio are printed. Target: a ÷ b ≤ 1.1.

    .venv/bin/python bench/builtin_xgboost.py [--rows 100000] [--features 20] [--rounds 7]
        [--num-round 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "homeport" / "builtins" / "images" / "xgboost" / "train"

BASELINE = """
import sys
import numpy as np
import xgboost as xgb

train_csv, val_csv, model_path, params_json, num_round = sys.argv[1:6]
params = __import__("json").loads(params_json)
train = np.loadtxt(train_csv, delimiter=",", dtype=np.float32, ndmin=2)
val = np.loadtxt(val_csv, delimiter=",", dtype=np.float32, ndmin=2)
dtrain = xgb.DMatrix(train[:, 1:], label=train[:, 0])
dval = xgb.DMatrix(val[:, 1:], label=val[:, 0])
booster = xgb.train(params, dtrain, num_boost_round=int(num_round),
                    evals=[(dtrain, "train"), (dval, "validation")], verbose_eval=True)
booster.save_model(model_path)
"""


# The built-in's train with scikit-learn already imported: xgboost's import then costs what it
# costs the direct script.
PLAIN_IMPORT = """
import runpy, sys
import sklearn.base
sys.argv = sys.argv[1:]
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def make_data(folder: Path, rows: int, features: int, seed: int = 0) -> tuple[Path, Path]:
    """A binary classification problem with some signal, label first, 6 significant digits."""
    rng = np.random.default_rng(seed)
    total = rows + rows // 5
    x = rng.normal(size=(total, features)).astype(np.float32)
    logit = x[:, 0] * 1.5 - x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + rng.normal(scale=0.5, size=total)
    y = (logit > 0).astype(np.float32)
    data = np.column_stack([y, x])
    train_csv = folder / "data" / "train" / "train.csv"
    val_csv = folder / "data" / "validation" / "validation.csv"
    for path, part in ((train_csv, data[:rows]), (val_csv, data[rows:])):
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(path, part, delimiter=",", fmt="%.6g")
    return train_csv, val_csv


def prepare_base(folder: Path, train_csv: Path, val_csv: Path, hyperparameters: dict[str, str]) -> Path:
    base = folder / "ml"
    (base / "input" / "config").mkdir(parents=True, exist_ok=True)
    for channel, src in (("train", train_csv), ("validation", val_csv)):
        dest = base / "input" / "data" / channel
        dest.mkdir(parents=True, exist_ok=True)
        link = dest / src.name
        if not link.exists():
            link.symlink_to(src)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    channels = {c: {"ContentType": "text/csv", "TrainingInputMode": "File"} for c in ("train", "validation")}
    (base / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(channels))
    return base


def run_timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        tail = f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        raise SystemExit(f"{cmd[:2]} failed ({proc.returncode}):\n{tail}")
    return elapsed, cpu, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7, help="timed runs of each side")
    parser.add_argument("--num-round", type=int, default=100)
    parser.add_argument(
        "--plain-import", action="store_true",
        help="import scikit-learn before the built-in's train runs, so that its xgboost import pays for "
        "scikit-learn and scipy.stats like the direct script's (what the built-in saves by skipping them)",
    )
    parser.add_argument(
        "--omp-passive", action="store_true",
        help="OMP_WAIT_POLICY=PASSIVE for both sides: idle OpenMP threads sleep instead of spinning, which "
        "keeps a machine shared with other work from inflating both timings several-fold",
    )
    args = parser.parse_args()

    hyperparameters = {
        "num_round": str(args.num_round), "objective": "binary:logistic", "max_depth": "6", "eta": "0.2",
        "subsample": "0.8", "min_child_weight": "1", "eval_metric": "logloss,error", "seed": "7",
        "tree_method": "hist",
    }
    params = {
        "objective": "binary:logistic", "max_depth": 6, "eta": 0.2, "subsample": 0.8, "min_child_weight": 1.0,
        "eval_metric": ["logloss", "error"], "seed": 7, "tree_method": "hist",
    }
    with tempfile.TemporaryDirectory(prefix="bench-xgb-") as tmp:
        folder = Path(tmp)
        train_csv, val_csv = make_data(folder, args.rows, args.features)
        base = prepare_base(folder, train_csv, val_csv, hyperparameters)
        baseline_py = folder / "baseline.py"
        baseline_py.write_text(BASELINE)
        env = dict(os.environ, SAGEMAKER_BASE_DIR=str(base), PYTHONUNBUFFERED="TRUE")
        if args.omp_passive:
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        builtin_cmd = [sys.executable, str(TRAIN)]
        if args.plain_import:
            builtin_cmd = [sys.executable, "-c", PLAIN_IMPORT, str(TRAIN)]
        baseline_cmd = [sys.executable, str(baseline_py), str(train_csv), str(val_csv),
                        str(folder / "direct-model.ubj"), json.dumps(params), str(args.num_round)]
        size_mb = (train_csv.stat().st_size + val_csv.stat().st_size) / 1e6
        print(f"data: {args.rows} train + {args.rows // 5} validation rows x {args.features} features "
              f"({size_mb:.1f} MB CSV); num_round {args.num_round}; {os.cpu_count()} CPUs; "
              f"python {sys.version.split()[0]}; OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY', '(default)')}"
              f"{'; built-in with scikit-learn pre-imported' if args.plain_import else ''}")
        # one warm-up of each (page cache, imports)
        run_timed(builtin_cmd, env)
        run_timed(baseline_cmd, env)
        builtin_times, direct_times, builtin_cpu, direct_cpu = [], [], [], []
        builtin_out = direct_out = ""
        for i in range(args.rounds):
            t, tc, builtin_out = run_timed(builtin_cmd, env)
            d, dc, direct_out = run_timed(baseline_cmd, env)
            builtin_times.append(t)
            direct_times.append(d)
            builtin_cpu.append(tc)
            direct_cpu.append(dc)
            print(f"round {i + 1}: built-in {t:.3f} s (cpu {tc:.2f})  direct {d:.3f} s (cpu {dc:.2f})  "
                  f"ratio {t / d:.3f}  load {os.getloadavg()[0]:.2f}", flush=True)
        last_builtin = builtin_out.strip().splitlines()[-1]
        last_direct = direct_out.strip().splitlines()[-1]
        same = last_builtin == last_direct
        print(f"last evaluation line, built-in: {last_builtin!r}")
        print(f"last evaluation line, direct:   {last_direct!r}  ({'identical' if same else 'DIFFERENT'})")
        onnx = (base / "model" / "model.onnx").is_file()
        print(f"built-in wrote xgboost-model and {'model.onnx' if onnx else 'no model.onnx'}")
        cb, cd = statistics.median(builtin_cpu), statistics.median(direct_cpu)
        print(f"median CPU time: built-in {cb:.2f} s, direct {cd:.2f} s, ratio {cb / cd:.3f}")
        mb, md = statistics.median(builtin_times), statistics.median(direct_times)
        ratios = sorted(t / d for t, d in zip(builtin_times, direct_times, strict=True))
        print(f"median built-in {mb:.3f} s, median direct {md:.3f} s, ratio of medians {mb / md:.3f} "
              f"(per-round ratios {ratios[0]:.3f}-{ratios[-1]:.3f}); target <= 1.1: "
              f"{'met' if mb / md <= 1.1 else 'NOT met'}")


if __name__ == "__main__":
    main()
