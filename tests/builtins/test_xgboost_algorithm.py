"""The XGBoost image's algorithm (``xgboost_algorithm``) and serving handler (``xgboost_handler``).

Training runs in-process through ``algorithm_main(base)`` with a temporary ``/opt/ml``-style base
folder; the handler's ``model_fn``/``transform_fn`` are called directly (no toolkit, no server).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "homeport" / "builtins" / "images" / "xgboost"
sys.path.insert(0, str(IMAGE))

import xgboost_algorithm as algo  # noqa: E402
import xgboost_handler as handler  # noqa: E402

IRIS_CLASSES = {"setosa": 0, "versicolor": 1, "virginica": 2}
FLOAT = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
EVAL_LINE = re.compile(r"^\[(\d+)\]\ttrain-merror:(\d\.\d{5})\tvalidation-merror:(\d\.\d{5})$")


# -- fixtures and helpers ---------------------------------------------------------------------------


def iris() -> np.ndarray:
    """examples/data/iris.csv (``species,f1,f2,f3,f4``) as a float array, numeric class first, shuffled."""
    rows = []
    for line in (ROOT / "examples" / "data" / "iris.csv").read_text().splitlines():
        if line.strip():
            name, *features = line.strip().split(",")
            rows.append([IRIS_CLASSES[name], *map(float, features)])
    data = np.array(rows, dtype=np.float64)
    return data[np.random.default_rng(42).permutation(len(data))]


def write_csv(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join([str(int(r[0]))] + [repr(float(v)) for v in r[1:]]) for r in data]
    path.write_text("\n".join(lines) + "\n")


def make_base(
    tmp_path: Path,
    hyperparameters: dict[str, str],
    channels: dict[str, str | None] | None = None,
) -> Path:
    base = tmp_path / "ml"
    (base / "input" / "config").mkdir(parents=True, exist_ok=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    channels = channels if channels is not None else {"train": "text/csv", "validation": "text/csv"}
    config = {name: ({"ContentType": ct} if ct else {}) for name, ct in channels.items()}
    (base / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(config))
    return base


IRIS_PARAMS = {
    "num_round": "10",
    "objective": "multi:softmax",
    "num_class": "3",
    "eta": "0.3",
    "max_depth": "3",
    "seed": "11",
    "eval_metric": "merror",
}
DIRECT_PARAMS = {
    "objective": "multi:softmax",
    "num_class": 3,
    "eta": 0.3,
    "max_depth": 3,
    "seed": 11,
    "eval_metric": ["merror"],
}


@pytest.fixture()
def iris_split() -> tuple[np.ndarray, np.ndarray]:
    data = iris()
    return data[:120], data[120:]


@pytest.fixture()
def iris_base(tmp_path: Path, iris_split: tuple[np.ndarray, np.ndarray]) -> Path:
    train, val = iris_split
    base = make_base(tmp_path, IRIS_PARAMS)
    write_csv(base / "input" / "data" / "train" / "iris-train.csv", train)
    write_csv(base / "input" / "data" / "validation" / "iris-validation.csv", val)
    return base


def failure(base: Path) -> str:
    return (base / "output" / "failure").read_text()


def direct_booster(train: np.ndarray, val: np.ndarray, params: dict, num_round: int) -> xgb.Booster:
    dtrain = xgb.DMatrix(train[:, 1:], label=train[:, 0])
    dval = xgb.DMatrix(val[:, 1:], label=val[:, 0])
    return xgb.train(
        params, dtrain, num_round, evals=[(dtrain, "train"), (dval, "validation")], verbose_eval=False
    )


def load_model(base: Path) -> xgb.Booster:
    """``Booster().load_model`` reads ``xgboost-model`` as the container's users do."""
    path = base / "model" / "xgboost-model"
    assert path.read_bytes()[:2] == b'{"'  # JSON: loadable by every xgboost since 1.0
    booster = xgb.Booster()
    with warnings.catch_warnings():  # "Unknown file format: ``. Using JSON as a guess."
        warnings.simplefilter("ignore")
        booster.load_model(str(path))
    return booster


# -- training on iris -------------------------------------------------------------------------------


def test_iris_trains_with_sagemaker_evaluation_lines(iris_base, iris_split, capsys):
    assert algo.algorithm_main(iris_base) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert len(lines) == 10
    for i, line in enumerate(lines):
        match = EVAL_LINE.match(line)
        assert match, repr(line)
        assert int(match.group(1)) == i
    # what CloudWatch (and Homeport's log layer) shows, read by SageMaker's metric definition regexes
    shown = lines[-1].replace("\t", "#011")
    for channel in ("train", "validation"):
        regex = rf".*\[[0-9]+\].*#011{channel}-merror:{FLOAT}.*"
        assert re.match(regex, shown), (regex, shown)
    assert not (iris_base / "output" / "failure").exists()


def test_iris_model_predicts_as_xgboost_trained_directly(iris_base, iris_split, capsys):
    assert algo.algorithm_main(iris_base) == 0
    out = capsys.readouterr().out
    train, val = iris_split
    ours = load_model(iris_base)
    direct = direct_booster(train, val, DIRECT_PARAMS, 10)
    features = xgb.DMatrix(np.vstack([train, val])[:, 1:])
    assert np.array_equal(ours.predict(features), direct.predict(features))
    # the same evaluation as xgboost's own monitor prints
    last = [line for line in out.splitlines() if line.startswith("[9]")][0]
    dtrain = xgb.DMatrix(train[:, 1:], label=train[:, 0])
    dval = xgb.DMatrix(val[:, 1:], label=val[:, 0])
    expected = direct.eval_set([(dtrain, "train"), (dval, "validation")], 9)
    scores = dict(re.findall(r"(\S+-merror):(\S+)", expected))
    assert (
        last == f"[9]\ttrain-merror:{float(scores['train-merror']):.5f}\t"
        f"validation-merror:{float(scores['validation-merror']):.5f}"
    )


def test_iris_model_onnx_predicts_the_same(iris_base, iris_split, capsys):
    ort = pytest.importorskip("onnxruntime")
    assert algo.algorithm_main(iris_base) == 0
    onnx_path = iris_base / "model" / "model.onnx"
    assert onnx_path.is_file()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    features = np.vstack(iris_split)[:, 1:].astype(np.float32)
    label = session.run(None, {"input": features})[0]
    expected = load_model(iris_base).predict(xgb.DMatrix(features))
    assert np.array_equal(label.astype(np.float32), expected)


def test_binary_logistic_onnx_probabilities(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    data = iris()
    data[:, 0] = (data[:, 0] == 2).astype(float)  # virginica or not
    base = make_base(
        tmp_path, {"num_round": "8", "objective": "binary:logistic", "seed": "3"}, {"train": "csv"}
    )
    write_csv(base / "input" / "data" / "train" / "part.csv", data)
    assert algo.algorithm_main(base) == 0
    session = ort.InferenceSession(str(base / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
    features = data[:, 1:].astype(np.float32)
    probabilities = session.run(None, {"input": features})[1][:, 1]
    expected = load_model(base).predict(xgb.DMatrix(features))
    assert np.allclose(probabilities, expected, atol=1e-6)
    # default metric for binary:logistic, train channel only
    assert re.match(r"^\[0\]\ttrain-logloss:\d\.\d{5}$", capsys.readouterr().out.splitlines()[0])


def test_objective_without_exact_onnx_conversion_skips_onnx(tmp_path, capsys):
    data = iris()
    data[:, 0] = data[:, 1] / 10.0
    base = make_base(
        tmp_path, {"num_round": "3", "objective": "reg:logistic", "base_score": "0.5"}, {"train": "text/csv"}
    )
    write_csv(base / "input" / "data" / "train" / "part.csv", data)
    assert algo.algorithm_main(base) == 0
    assert (base / "model" / "xgboost-model").is_file()
    assert not (base / "model" / "model.onnx").exists()


def test_several_files_and_nested_folders_read_as_one(tmp_path, iris_split, capsys):
    train, val = iris_split
    one = make_base(tmp_path / "one", IRIS_PARAMS)
    write_csv(one / "input" / "data" / "train" / "all.csv", train)
    write_csv(one / "input" / "data" / "validation" / "v.csv", val)
    many = make_base(tmp_path / "many", IRIS_PARAMS)
    write_csv(many / "input" / "data" / "train" / "a.csv", train[:50])
    write_csv(many / "input" / "data" / "train" / "b" / "c.csv", train[50:90])
    write_csv(many / "input" / "data" / "train" / "b" / "d" / "e.csv", train[90:])
    (many / "input" / "data" / "train" / ".hidden").write_text("not data")
    write_csv(many / "input" / "data" / "validation" / "v.csv", val)
    assert algo.algorithm_main(one) == 0
    assert algo.algorithm_main(many) == 0
    features = xgb.DMatrix(val[:, 1:])
    assert np.array_equal(load_model(one).predict(features), load_model(many).predict(features))


@pytest.mark.parametrize(
    "content_type", ["csv", "text/csv", "text/csv;label_size=1", "text/csv; charset=utf-8", None]
)
def test_csv_content_type_forms(tmp_path, iris_split, content_type, capsys):
    train, _ = iris_split
    base = make_base(
        tmp_path, {"num_round": "2", "objective": "multi:softprob", "num_class": "3"}, {"train": content_type}
    )
    write_csv(base / "input" / "data" / "train" / "t.csv", train)
    assert algo.algorithm_main(base) == 0, failure(base)
    assert load_model(base).predict(xgb.DMatrix(train[:3, 1:])).shape == (3, 3)


def test_csv_weights_second_column(tmp_path, iris_split, capsys):
    train, _ = iris_split
    weights = np.where(train[:, 0] == 1, 5.0, 1.0)
    weighted = np.column_stack([train[:, 0], weights, train[:, 1:]])
    base = make_base(
        tmp_path,
        {"num_round": "5", "objective": "multi:softmax", "num_class": "3", "csv_weights": "1", "seed": "2"},
        {"train": "text/csv"},
    )
    write_csv(base / "input" / "data" / "train" / "t.csv", weighted)
    assert algo.algorithm_main(base) == 0
    direct = xgb.train(
        {"objective": "multi:softmax", "num_class": 3, "seed": 2},
        xgb.DMatrix(train[:, 1:], label=train[:, 0], weight=weights),
        5,
    )
    features = xgb.DMatrix(train[:, 1:])
    assert np.array_equal(load_model(base).predict(features), direct.predict(features))


def test_libsvm_input(tmp_path, iris_split, capsys):
    train, val = iris_split

    def libsvm(rows: np.ndarray) -> str:
        return "".join(
            f"{int(r[0])} " + " ".join(f"{j}:{float(v)!r}" for j, v in enumerate(r[1:], start=1)) + "\n"
            for r in rows
        )

    base = make_base(tmp_path, IRIS_PARAMS, {"train": "text/libsvm", "validation": "text/libsvm"})
    (base / "input" / "data" / "train").mkdir(parents=True)
    (base / "input" / "data" / "validation").mkdir(parents=True)
    (base / "input" / "data" / "train" / "a.libsvm").write_text(libsvm(train[:60]))
    (base / "input" / "data" / "train" / "b.libsvm").write_text(libsvm(train[60:]))
    (base / "input" / "data" / "validation" / "v.libsvm").write_text(libsvm(val))
    assert algo.algorithm_main(base) == 0, failure(base)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(lines) == 10 and all(EVAL_LINE.match(line) for line in lines)
    # LIBSVM indices start at 1: column 0 is empty
    shifted_train = np.column_stack([train[:, 0], np.full(len(train), np.nan), train[:, 1:]])
    shifted_val = np.column_stack([val[:, 0], np.full(len(val), np.nan), val[:, 1:]])
    direct = direct_booster(shifted_train, shifted_val, DIRECT_PARAMS, 10)
    features = xgb.DMatrix(shifted_val[:, 1:])
    assert np.array_equal(load_model(base).predict(features), direct.predict(features))


def test_libsvm_sniffed_without_content_type(tmp_path, iris_split, capsys):
    train, _ = iris_split
    text = "".join(f"{int(r[0])} 0:{r[1]} 1:{r[2]} 2:{r[3]} 3:{r[4]}\n" for r in train)
    base = make_base(
        tmp_path, {"num_round": "2", "objective": "multi:softmax", "num_class": "3"}, {"train": None}
    )
    (base / "input" / "data" / "train").mkdir(parents=True)
    (base / "input" / "data" / "train" / "t.txt").write_text(text)
    assert algo.algorithm_main(base) == 0, failure(base)


def test_parquet_input(tmp_path, iris_split, capsys):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    train, val = iris_split
    params = {"num_round": "6", "objective": "reg:squarederror", "seed": "5", "eval_metric": "rmse,mae"}
    base = make_base(tmp_path, params, {"train": "application/x-parquet", "validation": None})
    for channel, rows in (("train", train), ("validation", val)):
        folder = base / "input" / "data" / channel
        folder.mkdir(parents=True)
        table = pa.table({"target": rows[:, 0], **{f"x{j}": rows[:, j] for j in range(1, 5)}})
        pq.write_table(table, folder / "data.bin")  # validation has no ContentType: the train channel's
    assert algo.algorithm_main(base) == 0, failure(base)
    first = capsys.readouterr().out.splitlines()[0]
    assert re.match(r"^\[0\]\ttrain-rmse:\S+\ttrain-mae:\S+\tvalidation-rmse:\S+\tvalidation-mae:\S+$", first)
    direct = direct_booster(
        train, val, {"objective": "reg:squarederror", "seed": 5, "eval_metric": ["rmse", "mae"]}, 6
    )
    features = xgb.DMatrix(val[:, 1:])
    assert np.array_equal(load_model(base).predict(features), direct.predict(features))
    assert (base / "model" / "model.onnx").is_file()
    assert algo.sniff_content_type([base / "input" / "data" / "train" / "data.bin"]) == "parquet"


def test_container_metrics_accuracy_and_f1(iris_base, capsys):
    params = dict(IRIS_PARAMS, eval_metric="merror,accuracy,f1,mse")
    (iris_base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(params))
    assert algo.algorithm_main(iris_base) == 0, failure(iris_base)
    line = capsys.readouterr().out.splitlines()[-1]
    values = dict(re.findall(r"(validation-\w+):(\S+)", line))
    assert set(values) == {"validation-merror", "validation-accuracy", "validation-f1", "validation-mse"}
    assert float(values["validation-accuracy"]) == pytest.approx(
        1 - float(values["validation-merror"]), abs=1e-5
    )


def test_early_stopping_keeps_the_best_iteration(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5))
    y = (x[:, 0] + rng.normal(scale=2.0, size=600) > 0).astype(float)  # noisy: validation soon stalls
    data = np.column_stack([y, x])
    params = {
        "num_round": "300",
        "objective": "binary:logistic",
        "eta": "0.5",
        "max_depth": "6",
        "eval_metric": "logloss",
        "early_stopping_rounds": "5",
        "seed": "1",
    }
    base = make_base(tmp_path, params)
    write_csv(base / "input" / "data" / "train" / "t.csv", data[:400])
    write_csv(base / "input" / "data" / "validation" / "v.csv", data[400:])
    assert algo.algorithm_main(base) == 0, failure(base)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(lines) < 300
    losses = [float(re.search(r"validation-logloss:(\S+)", line).group(1)) for line in lines]
    best = int(np.argmin(losses))
    assert len(lines) == best + 5 + 1
    assert load_model(base).num_boosted_rounds() == best + 1


# -- failures: the container's messages in output/failure --------------------------------------------


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        (
            {"objective": "multi:softmax", "num_class": "3"},
            "ClientError: Missing required hyperparameter: num_round",
        ),
        ({"num_round": "5", "eta": "1.5"}, "ClientError: Hyperparameter eta: 1.5 is not in [0, 1]"),
        (
            {"num_round": "5", "objective": "multi:softmax"},
            "ClientError: Require input for parameter 'num_class' for multi-classification",
        ),
        ({"num_round": "0"}, "ClientError: Hyperparameter num_round: 0 is not in [1, +inf)"),
        (
            {"num_round": "ten"},
            "ClientError: Hyperparameter num_round: could not parse value (caused by ValueError)",
        ),
        ({"num_round": "5", "silent": "0"}, "ClientError: Extraneous hyperparameter found: silent"),
        ({"num_round": "5", "subsample": "0"}, "ClientError: Hyperparameter subsample: 0.0 is not in (0, 1]"),
        (
            {"num_round": "5", "objective": "reg:foo"},
            "ClientError: Hyperparameter objective: reg:foo is not in [",
        ),
        (
            {"num_round": "5", "eval_metric": "rmse,foo"},
            "ClientError: Hyperparameter eval_metric: value ['rmse', 'foo'] not in range [",
        ),
        (
            {"num_round": "5", "objective": "multi:softprob", "num_class": "3", "eval_metric": "auc"},
            "ClientError: Metric 'auc' can only be applied for classification and ranking problems.",
        ),
    ],
)
def test_invalid_hyperparameters_fail_with_the_containers_message(
    tmp_path, iris_split, hyperparameters, message, capsys
):
    base = make_base(tmp_path, hyperparameters)
    write_csv(base / "input" / "data" / "train" / "t.csv", iris_split[0])
    code = algo.algorithm_main(base)
    assert code != 0
    assert failure(base).startswith(message), failure(base)
    assert not (base / "model" / "xgboost-model").exists()


def test_learning_rate_alias_and_json_quoted_values(tmp_path, iris_split, capsys):
    base = make_base(
        tmp_path,
        {
            "num_round": "3",
            "learning_rate": "0.1",
            "objective": '"multi:softmax"',
            "num_class": "3",
            "sagemaker_container_log_level": "20",
        },
        {"train": "text/csv"},
    )
    write_csv(base / "input" / "data" / "train" / "t.csv", iris_split[0])
    assert algo.algorithm_main(base) == 0, failure(base)


@pytest.mark.parametrize(
    ("channels", "files", "message"),
    [
        ({"validation": "text/csv"}, ["validation"], "ClientError: Missing required channel: train"),
        ({"train": "text/csv"}, [], "ClientError: No data in training channel path"),
        (
            {"train": "text/csv", "validation": "text/csv"},
            ["train"],
            "ClientError: No data in validation channel path",
        ),
        (
            {"train": "text/csv;label_size=2"},
            ["train"],
            "ClientError: text/csv;label_size=2 is not an accepted csv ContentType.",
        ),
        (
            {"train": "application/foo"},
            ["train"],
            "ClientError: application/foo is not an accepted ContentType: csv",
        ),
    ],
)
def test_channel_failures(tmp_path, iris_split, channels, files, message, capsys):
    base = make_base(tmp_path, {"num_round": "2"}, channels)
    (base / "input" / "data" / "validation").mkdir(parents=True)
    (base / "input" / "data" / "train").mkdir(parents=True)
    for channel in files:
        write_csv(base / "input" / "data" / channel / "d.csv", iris_split[0])
    assert algo.algorithm_main(base) == 1
    assert failure(base).startswith(message), failure(base)


def test_malformed_csv_is_a_client_error(tmp_path, capsys):
    base = make_base(tmp_path, {"num_round": "2"}, {"train": "text/csv"})
    folder = base / "input" / "data" / "train"
    folder.mkdir(parents=True)
    (folder / "t.csv").write_text("label,a,b\n1,2,3\n")
    assert algo.algorithm_main(base) == 1
    assert failure(base).startswith("ClientError: Failed to load csv data with exception:")


def test_label_out_of_range_is_a_client_error(tmp_path, iris_split, capsys):
    base = make_base(tmp_path, {"num_round": "2", "objective": "binary:logistic"}, {"train": "text/csv"})
    write_csv(base / "input" / "data" / "train" / "t.csv", iris_split[0])  # labels 0, 1, 2
    assert algo.algorithm_main(base) == 1
    assert failure(base).startswith("ClientError: ")
    assert "logistic" in failure(base) and "Stack trace" not in failure(base)


def test_train_script_runs_the_algorithm(iris_base):
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(iris_base))
    proc = subprocess.run(
        [sys.executable, str(IMAGE / "train")], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("[0]\ttrain-merror:")
    assert "Running XGBoost Sagemaker in algorithm mode" in proc.stderr
    assert (iris_base / "model" / "xgboost-model").is_file()


def test_train_script_failure_exit_code(tmp_path):
    base = make_base(tmp_path, {"eta": "0.1"})
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(base))
    proc = subprocess.run(
        [sys.executable, str(IMAGE / "train")], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 1
    assert failure(base) == "ClientError: Missing required hyperparameter: num_round"


def test_script_mode_delegates_to_the_toolkit(tmp_path, monkeypatch):
    base = make_base(tmp_path, {"sagemaker_program": "train.py", "num_round": "3"})
    calls = []
    toolkit = types.ModuleType("homeport_toolkit")
    training = types.ModuleType("homeport_toolkit.training")
    training.main = lambda: calls.append("main") or 7
    toolkit.training = training
    monkeypatch.setitem(sys.modules, "homeport_toolkit", toolkit)
    monkeypatch.setitem(sys.modules, "homeport_toolkit.training", training)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    assert algo.main() == 7
    assert calls == ["main"]


def test_validation_helpers():
    assert str(algo.Interval(min_closed=0, max_closed=1)) == "[0, 1]"
    assert str(algo.Interval(min_open=0)) == "(0, +inf)"
    assert algo.parse_content_type("text/x-libsvm") == "libsvm"
    assert algo.parse_content_type("application/x-parquet") == "parquet"
    parsed = algo.validate_hyperparameters(
        {
            "num_round": "5.0",
            "eval_metric": "error@0.7,auc",
            "objective": "binary:logistic",
            "monotone_constraints": "(1,-1)",
            "tree_method": "hist",
        }
    )
    assert parsed["num_round"] == 5 and parsed["eval_metric"] == ["error@0.7", "auc"]
    assert parsed["monotone_constraints"] == (1, -1)
    with pytest.raises(algo.UserError, match="monotone_constraints can be used only"):
        algo.validate_hyperparameters({"num_round": "5", "monotone_constraints": "(1,-1)"})


# -- serving --------------------------------------------------------------------------------------


@pytest.fixture()
def iris_model(iris_base, capsys):
    assert algo.algorithm_main(iris_base) == 0
    return handler.model_fn(str(iris_base / "model"))


@pytest.fixture()
def softprob_model(tmp_path, iris_split, capsys):
    base = make_base(
        tmp_path, {"num_round": "5", "objective": "multi:softprob", "num_class": "3"}, {"train": "text/csv"}
    )
    write_csv(base / "input" / "data" / "train" / "t.csv", iris_split[0])
    assert algo.algorithm_main(base) == 0
    return handler.model_fn(str(base / "model"))


@pytest.fixture(autouse=True)
def _serving_env(monkeypatch):
    for name in ("SAGEMAKER_BATCH", "SAGEMAKER_INFERENCE_OUTPUT", "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"):
        monkeypatch.delenv(name, raising=False)


def expected_predictions(model, rows: np.ndarray) -> np.ndarray:
    return model.booster.predict(xgb.DMatrix(rows.astype(np.float32)))


def test_model_fn_reads_the_model(iris_model):
    assert iris_model.objective == "multi:softmax"
    assert iris_model.num_class == 3
    assert iris_model.num_features == 4


def test_csv_one_row(iris_model, iris_split):
    row = iris_split[1][0, 1:]
    body, content_type = handler.transform_fn(iris_model, ",".join(map(str, row)), "text/csv", "text/csv")
    assert content_type == "text/csv"
    assert body == str(float(expected_predictions(iris_model, row[None, :])[0]))


def test_csv_one_row_is_cheap(iris_model, iris_split):
    payload = ",".join(map(str, iris_split[1][0, 1:]))
    handler.transform_fn(iris_model, payload, "text/csv", "text/csv")
    start = time.perf_counter()
    for _ in range(200):
        handler.transform_fn(iris_model, payload, "text/csv", "text/csv")
    per_call = (time.perf_counter() - start) / 200
    assert per_call < 0.005, f"{per_call * 1e3:.2f} ms per one-row request"


def test_csv_many_rows(iris_model, iris_split):
    rows = iris_split[1][:, 1:]
    payload = "\n".join(",".join(map(str, r)) for r in rows) + "\n"
    body, _ = handler.transform_fn(iris_model, payload, "text/csv; charset=utf-8", "text/csv")
    assert body == ",".join(map(str, expected_predictions(iris_model, rows).tolist()))


def test_csv_batch_is_one_prediction_per_line(iris_model, iris_split, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BATCH", "true")
    rows = iris_split[1][:4, 1:]
    payload = "\n".join(",".join(map(str, r)) for r in rows)
    body, _ = handler.transform_fn(iris_model, payload.encode(), "text/csv", "text/csv")
    assert body == "".join(f"{v}\n" for v in expected_predictions(iris_model, rows).tolist())


def test_csv_missing_values(iris_model):
    body, _ = handler.transform_fn(iris_model, "5.1,,1.4,0.2", "text/csv", "text/csv")
    expected = iris_model.booster.predict(xgb.DMatrix(np.array([[5.1, np.nan, 1.4, 0.2]], dtype=np.float32)))
    assert body == str(float(expected[0]))


def test_json_instances_and_features(iris_model, iris_split):
    rows = iris_split[1][:3, 1:]
    expected = {"predictions": [{"score": v} for v in expected_predictions(iris_model, rows).tolist()]}
    for payload in (
        {"instances": [{"features": list(r)} for r in rows]},
        {"instances": [list(r) for r in rows]},
        [list(r) for r in rows],
        {"instances": [{"data": {"features": {"values": list(r)}}} for r in rows]},
    ):
        body, content_type = handler.transform_fn(
            iris_model, json.dumps(payload), "application/json", "application/json"
        )
        assert content_type == "application/json"
        assert json.loads(body) == expected
    body, _ = handler.transform_fn(
        iris_model, json.dumps({"features": list(rows[0])}), "application/json", "application/json"
    )
    assert json.loads(body) == {"predictions": expected["predictions"][:1]}


def test_json_sparse_features(iris_model):
    payload = {
        "instances": [{"data": {"features": {"keys": [0, 2, 3], "shape": [4], "values": [5.1, 1.4, 0.2]}}}]
    }
    body, _ = handler.transform_fn(iris_model, json.dumps(payload), "application/json", "application/json")
    expected = iris_model.booster.predict(xgb.DMatrix(np.array([[5.1, np.nan, 1.4, 0.2]], dtype=np.float32)))
    assert json.loads(body) == {"predictions": [{"score": float(expected[0])}]}


def test_jsonlines_request_and_response(iris_model, iris_split):
    rows = iris_split[1][:3, 1:]
    payload = "\n".join(json.dumps({"features": list(r)}) for r in rows).encode()
    body, content_type = handler.transform_fn(
        iris_model, payload, "application/jsonlines", "application/jsonlines"
    )
    assert content_type == "application/jsonlines"
    assert body == "".join(
        json.dumps({"score": v}) + "\n" for v in expected_predictions(iris_model, rows).tolist()
    )


def test_libsvm_request(iris_model, iris_split):
    rows = iris_split[1][:3, 1:]
    payload = "\n".join(" ".join(f"{j}:{v}" for j, v in enumerate(r)) for r in rows).encode()
    body, _ = handler.transform_fn(iris_model, payload, "text/libsvm", "text/csv")
    assert body == ",".join(map(str, expected_predictions(iris_model, rows).tolist()))
    # a leading label is skipped, as the container does
    body, _ = handler.transform_fn(iris_model, b"1 " + payload.split(b"\n")[0], "text/x-libsvm", "text/csv")
    assert body == str(expected_predictions(iris_model, rows[:1]).tolist()[0])


def test_softprob_outputs(softprob_model, iris_split):
    rows = iris_split[1][:2, 1:]
    expected = expected_predictions(softprob_model, rows).tolist()
    payload = "\n".join(",".join(map(str, r)) for r in rows)
    body, _ = handler.transform_fn(softprob_model, payload, "text/csv", "text/csv")
    assert body == "\n".join(",".join(map(str, row)) for row in expected)
    body, _ = handler.transform_fn(softprob_model, payload, "text/csv", "application/json")
    assert json.loads(body) == {"predictions": [{"score": row} for row in expected]}


def test_accept_defaults_and_errors(iris_model, monkeypatch):
    body, content_type = handler.transform_fn(iris_model, "5.1,3.5,1.4,0.2", "text/csv", "*/*")
    assert content_type == "text/csv"
    body, content_type = handler.transform_fn(iris_model, "5.1,3.5,1.4,0.2", None, None)
    assert content_type == "text/csv"
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
    body, content_type = handler.transform_fn(iris_model, "5.1,3.5,1.4,0.2", "text/csv", "*/*")
    assert content_type == "application/json" and json.loads(body)["predictions"]
    body, content_type = handler.transform_fn(
        iris_model, "5.1,3.5,1.4,0.2", "text/csv", "application/foo, application/json;q=0.9"
    )
    assert content_type == "application/json"
    with pytest.raises(handler.InferenceError) as info:
        handler.transform_fn(iris_model, "5.1,3.5,1.4,0.2", "text/csv", "image/png")
    assert info.value.status_code == 406
    with pytest.raises(handler.InferenceError) as info:
        handler.transform_fn(iris_model, b"\x00\x01", "application/x-recordio-protobuf", "text/csv")
    assert info.value.status_code == 415
    with pytest.raises(handler.InferenceError) as info:
        handler.transform_fn(iris_model, "a,b,c,d", "text/csv", "text/csv")
    assert info.value.status_code == 415 and "Loading csv data failed" in info.value.message
    with pytest.raises(handler.InferenceError) as info:
        handler.transform_fn(iris_model, "1,2,3,4,5,6,7", "text/csv", "text/csv")
    assert info.value.status_code == 400 and "Unable to evaluate payload provided" in info.value.message
    with pytest.raises(handler.InferenceError) as info:
        handler.transform_fn(iris_model, b"", "text/csv", "text/csv")
    assert info.value.status_code == 204


def test_selectable_inference_output(softprob_model, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label, probabilities,labels")
    body, content_type = handler.transform_fn(
        softprob_model, "5.1,3.5,1.4,0.2", "text/csv", "application/json"
    )
    prediction = json.loads(body)["predictions"][0]
    assert set(prediction) == {"predicted_label", "probabilities", "labels"}
    assert prediction["labels"] == [0, 1, 2]
    assert prediction["predicted_label"] == int(np.argmax(prediction["probabilities"]))
    body, _ = handler.transform_fn(softprob_model, "5.1,3.5,1.4,0.2", "text/csv", "text/csv")
    assert body == f'{prediction["predicted_label"]},"{prediction["probabilities"]}","[0, 1, 2]"'


def test_model_fn_without_a_model(tmp_path):
    with pytest.raises(handler.InferenceError, match="Unable to load model"):
        handler.model_fn(str(tmp_path))


def test_transform_fn_with_a_plain_booster(iris_model):
    body, _ = handler.transform_fn(iris_model.booster, "5.1,3.5,1.4,0.2", "text/csv", "application/json")
    assert json.loads(body)["predictions"][0]["score"] in (0.0, 1.0, 2.0)


def test_checkpoints_are_written_and_resumed(iris_base, capsys):
    (iris_base / "input" / "config" / "checkpointconfig.json").write_text(
        json.dumps({"LocalPath": "/opt/ml/checkpoints"})
    )
    params = dict(IRIS_PARAMS, num_round="3")
    (iris_base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(params))
    assert algo.algorithm_main(iris_base) == 0, failure(iris_base)
    checkpoints = iris_base / "checkpoints"  # /opt/ml/checkpoints under the base folder
    assert sorted(p.name for p in checkpoints.iterdir()) == [f"xgboost-checkpoint.{i}" for i in range(3)]
    capsys.readouterr()
    (iris_base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(IRIS_PARAMS))
    assert algo.algorithm_main(iris_base) == 0, failure(iris_base)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    # 7 more rounds; like the container (xgboost's monitor), their lines count from [0] again
    assert [line.split("]")[0] for line in lines] == [f"[{i}" for i in range(7)]
    assert load_model(iris_base).num_boosted_rounds() == 10
    assert sorted(p.name for p in checkpoints.iterdir()) == [f"xgboost-checkpoint.{i}" for i in range(5, 10)]


def test_import_xgboost_skips_scikit_learn_but_leaves_it_importable():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import xgboost_algorithm as a; "
        "xgb = a.import_xgboost(); "
        "assert 'sklearn' not in sys.modules, 'sklearn imported'; xgb.DMatrix([[1.0]]); "
        "import importlib.util; assert importlib.util.find_spec('sklearn') is None or __import__('sklearn'); "
        "print('ok')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(IMAGE)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
