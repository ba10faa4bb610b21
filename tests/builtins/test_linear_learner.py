"""Homeport's built-in Linear Learner image, in-process: training under a temporary SageMaker base
dir (``SAGEMAKER_BASE_DIR``), the metric lines SageMaker's own metric definitions read, the
``output/failure`` contract, the ONNX copy of the model, and the serving handler's formats.
Nothing here needs the serving toolkit, a container or the network."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

IMAGE = Path(__file__).resolve().parents[2] / "homeport" / "builtins" / "images" / "linear-learner"
IRIS = Path(__file__).resolve().parents[2] / "examples" / "data" / "iris.csv"
sys.path.insert(0, str(IMAGE))

import linear_learner as ll  # noqa: E402
import linear_learner_handler as handler  # noqa: E402

# The MetricDefinitions SageMaker attaches to Linear Learner jobs (as DescribeTrainingJob shows them).
_Q = r"#quality_metric: host=\S+, "
REAL_METRICS = {
    "train:objective_loss": _Q + r"epoch=\S+, train \S+_objective <loss>=(\S+)",
    "train:objective_loss:final": _Q + r"train \S+_objective <loss>=(\S+)",
    "train:binary_classification_accuracy": _Q + r"train binary_classification_accuracy <score>=(\S+)",
    "validation:objective_loss": _Q + r"epoch=\S+, validation \S+_objective <loss>=(\S+)",
    "validation:objective_loss:final": _Q + r"validation \S+_objective <loss>=(\S+)",
    "validation:binary_classification_accuracy": _Q
    + r"validation binary_classification_accuracy <score>=(\S+)",
    "validation:binary_f_beta": _Q + r"validation binary_f_\S+ <score>=(\S+)",
    "validation:precision": _Q + r"validation precision <score>=(\S+)",
    "validation:recall": _Q + r"validation recall <score>=(\S+)",
    "validation:roc_auc_score": _Q + r"validation roc_auc_score <score>=(\S+)",
    "validation:multiclass_accuracy": _Q + r"validation multiclass_accuracy <score>=(\S+)",
    "validation:multiclass_top_k_accuracy": _Q + r"validation multiclass_top_k_accuracy_\S+ <score>=(\S+)",
    "validation:dcg": _Q + r"validation dcg <score>=(\S+)",
    "validation:macro_precision": _Q + r"validation macro_precision <score>=(\S+)",
    "validation:macro_recall": _Q + r"validation macro_recall <score>=(\S+)",
    "validation:macro_f_beta": _Q + r"validation macro_f_\S+ <score>=(\S+)",
    "validation:mse": _Q + r"validation mse <loss>=(\S+)",
    "validation:absolute_loss": _Q + r"validation absolute_loss <loss>=(\S+)",
    "test:objective_loss": _Q + r"test \S+_objective <loss>=(\S+)",
    "test:mse": _Q + r"test mse <loss>=(\S+)",
    "test:absolute_loss": _Q + r"test absolute_loss <loss>=(\S+)",
    "train:progress": r"#progress_metric: host=\S+, completed (\S+) %",
    "train:throughput": r"#throughput_metric: host=\S+, train throughput=(\S+) records/second",
}


def metrics(log: str) -> dict[str, float]:
    """What SageMaker's MetricDefinitions would record: the last match of each regex."""
    found: dict[str, float] = {}
    for line in log.splitlines():
        for name, regex in REAL_METRICS.items():
            match = re.search(regex, line)
            if match:
                found[name] = float(match.group(1))
    return found


# -- fixtures: a SageMaker training job in a temporary base dir ------------------------------------


def csv_text(rows: np.ndarray) -> str:
    return "\n".join(",".join(f"{v:.10g}" for v in row) for row in rows) + "\n"


@dataclass
class Job:
    base: Path
    rc: int
    log: str

    @property
    def failure(self) -> str:
        path = self.base / "output" / "failure"
        return path.read_text() if path.exists() else ""

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    def model(self) -> ll.LinearModel:
        return handler.model_fn(str(self.model_dir))


def prepare(
    base: Path,
    hyperparameters: dict[str, Any],
    channels: dict[str, np.ndarray | dict[str, bytes]],
    content_type: str | None = "text/csv",
) -> None:
    """The training contract: config files and channel folders (rows, or {relative path: bytes})."""
    config = base / "input" / "config"
    config.mkdir(parents=True)
    config.joinpath("hyperparameters.json").write_text(json.dumps(hyperparameters))
    data_config: dict[str, Any] = {}
    for name, content in channels.items():
        folder = base / "input" / "data" / name
        folder.mkdir(parents=True)
        files = content if isinstance(content, dict) else {f"{name}.csv": csv_text(content).encode()}
        for relative, payload in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(payload)
        entry: dict[str, Any] = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
        if content_type:
            entry["ContentType"] = content_type
        data_config[name] = entry
    config.joinpath("inputdataconfig.json").write_text(json.dumps(data_config))


def run_job(base: Path, *args: Any, **kwargs: Any) -> Job:
    prepare(base, *args, **kwargs)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("SAGEMAKER_BASE_DIR", str(base))
        rc = ll.main()
    return Job(base, rc, out.getvalue())


@pytest.fixture
def job(tmp_path: Path) -> Callable[..., Job]:
    counter = iter(range(1000))

    def make(*args: Any, **kwargs: Any) -> Job:
        return run_job(tmp_path / f"job{next(counter)}", *args, **kwargs)

    return make


def cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    features, labels = load_breast_cancer(return_X_y=True)
    data = np.column_stack([labels, features])
    data = data[np.random.default_rng(3).permutation(len(data))]
    return data[:450], data[450:]


def iris() -> tuple[np.ndarray, np.ndarray]:
    species = {"setosa": 0, "versicolor": 1, "virginica": 2}
    rows = []
    for line in IRIS.read_text().splitlines():
        name, *features = line.split(",")
        rows.append([species[name], *map(float, features)])
    data = np.array(rows)
    every_fifth = np.arange(len(data)) % 5 == 0
    return data[~every_fifth], data[every_fifth]


def synthetic_regression() -> np.ndarray:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1000, 5)) * [1.0, 10.0, 0.1, 5.0, 2.0] + [0.0, 100.0, -3.0, 0.0, 7.0]
    labels = features @ np.array([2.0, -0.3, 5.0, 0.7, -1.5]) + 4.0 + rng.normal(scale=0.1, size=1000)
    return np.column_stack([labels, features])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Job]:
    """One job per predictor type, shared by the serving and ONNX tests."""
    root = tmp_path_factory.mktemp("linear-learner")
    train, validation = cancer()
    iris_train, iris_validation = iris()
    regression = synthetic_regression()
    jobs = {
        "binary_classifier": run_job(
            root / "binary",
            {"predictor_type": "binary_classifier", "feature_dim": "30", "epochs": "15"},
            {"train": train, "validation": validation},
        ),
        "multiclass_classifier": run_job(
            root / "multiclass",
            {"predictor_type": "multiclass_classifier", "num_classes": "3", "mini_batch_size": "16"},
            {"train": iris_train, "validation": iris_validation},
        ),
        "regressor": run_job(
            root / "regressor",
            {"predictor_type": "regressor", "mini_batch_size": "32"},
            {"train": regression[:800], "validation": regression[800:900], "test": regression[900:]},
        ),
    }
    for name, done in jobs.items():
        assert done.rc == 0, (name, done.failure, done.log[-3000:])
    return jobs


# -- training ---------------------------------------------------------------------------------------


def test_binary_classifier_on_breast_cancer_prints_sagemaker_metrics(trained: dict[str, Job]) -> None:
    done = trained["binary_classifier"]
    _train, validation = cancer()
    found = metrics(done.log)
    assert found["validation:binary_classification_accuracy"] >= 0.9
    for name in (
        "train:objective_loss",
        "validation:objective_loss",
        "validation:objective_loss:final",
        "validation:binary_f_beta",
        "validation:precision",
        "validation:recall",
        "validation:roc_auc_score",
        "train:progress",
        "train:throughput",
    ):
        assert name in found, name
    assert found["train:progress"] == 100.0
    assert found["validation:roc_auc_score"] > 0.95
    assert (
        "#quality_metric: host=algo-1, epoch=0, train binary_classification_cross_entropy_objective <loss>="
        in (done.log)
    )
    assert re.search(
        r"#validation_score \(algo-1\) : \('binary_classification_accuracy', 0\.9\d*\)", done.log
    )
    # The saved model agrees with the reported accuracy.
    model = done.model()
    scores, labels = model.predict(validation[:, 1:])
    assert labels is not None
    accuracy = float(np.mean(labels == validation[:, 0]))
    assert accuracy == pytest.approx(found["validation:binary_classification_accuracy"])
    assert np.all((scores >= 0) & (scores <= 1))
    assert sorted(p.name for p in done.model_dir.iterdir()) == [ll.MODEL_FILE, ll.ONNX_FILE]


def test_multiclass_classifier_on_iris(trained: dict[str, Job]) -> None:
    done = trained["multiclass_classifier"]
    _train, validation = iris()
    found = metrics(done.log)
    assert found["validation:multiclass_accuracy"] >= 0.9
    for name in (
        "validation:multiclass_top_k_accuracy",
        "validation:dcg",
        "validation:macro_precision",
        "validation:macro_recall",
        "validation:macro_f_beta",
        "validation:objective_loss",
    ):
        assert name in found, name
    assert "validation multiclass_cross_entropy_objective <loss>=" in done.log
    model = done.model()
    probabilities, labels = model.predict(validation[:, 1:])
    assert probabilities.shape == (len(validation), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert labels is not None and float(np.mean(labels == validation[:, 0])) >= 0.9


def test_regressor_on_a_linear_dataset(trained: dict[str, Job]) -> None:
    done = trained["regressor"]
    data = synthetic_regression()
    found = metrics(done.log)
    assert found["validation:mse"] < 0.05  # the noise alone is 0.01
    assert found["test:mse"] < 0.05
    assert "test:absolute_loss" in found and "test:objective_loss" in found
    assert "validation mse_objective <loss>=" in done.log
    model = done.model()
    predictions, labels = model.predict(data[900:, 1:])
    assert labels is None
    assert float(np.sqrt(np.mean((predictions - data[900:, 0]) ** 2))) < 0.2
    np.testing.assert_allclose(model.weights[:, 0], [2.0, -0.3, 5.0, 0.7, -1.5], atol=0.1)


def test_training_without_validation_reports_train_metrics(job: Callable[..., Job]) -> None:
    train, _validation = cancer()
    done = job({"predictor_type": "binary_classifier"}, {"train": train})
    assert done.rc == 0, done.failure
    found = metrics(done.log)
    assert found["train:binary_classification_accuracy"] >= 0.9
    assert "train:objective_loss:final" in found
    assert "validation:objective_loss" not in found


def test_several_files_nested_folders_and_gzip(job: Callable[..., Job]) -> None:
    train, validation = cancer()
    files = {
        "part-0.csv": csv_text(train[:200]).encode(),
        "more/part-1.csv.gz": gzip.compress(csv_text(train[200:]).encode()),
        ".hidden": b"not data",
    }
    done = job(
        {"predictor_type": "binary_classifier", "mini_batch_size": "100", "num_models": "4"},
        {"train": files, "validation": validation},
    )
    assert done.rc == 0, done.failure
    assert "Channel 'train': 450 records with 30 features" in done.log
    assert "Training 4 model(s)" in done.log
    assert metrics(done.log)["validation:binary_classification_accuracy"] >= 0.9


def test_tuning_job_trains_one_model(job: Callable[..., Job]) -> None:
    train, validation = cancer()
    done = job(
        {"predictor_type": "binary_classifier", "_tuning_objective_metric": "validation:binary_f_beta"},
        {"train": train, "validation": validation},
    )
    assert done.rc == 0, done.failure
    assert "Training 1 model(s)" in done.log


@pytest.mark.parametrize(
    "extra",
    [
        {"optimizer": "sgd", "mini_batch_size": "50"},
        {"optimizer": "rmsprop", "learning_rate": "0.01", "wd": "0.001", "l1": "0"},
        {"loss": "hinge_loss", "binary_classifier_model_selection_criteria": "f_beta", "f_beta": "2"},
        {"positive_example_weight_mult": "balanced", "normalize_data": "false", "use_bias": "False"},
        {
            "binary_classifier_model_selection_criteria": "precision_at_target_recall",
            "target_recall": "0.9",
            "init_method": "normal",
            "use_lr_scheduler": "false",
        },
        {"binary_classifier_model_selection_criteria": "loss_function", "early_stopping_patience": "1"},
    ],
)
def test_binary_classifier_settings(job: Callable[..., Job], extra: dict[str, str]) -> None:
    train, validation = cancer()
    done = job({"predictor_type": "binary_classifier", **extra}, {"train": train, "validation": validation})
    assert done.rc == 0, done.failure
    model = done.model()
    _scores, labels = model.predict(validation[:, 1:])
    assert labels is not None and float(np.mean(labels == validation[:, 0])) >= 0.85


@pytest.mark.parametrize(
    "loss", ["absolute_loss", "eps_insensitive_squared_loss", "eps_insensitive_absolute_loss", "huber_loss"]
)
def test_regression_losses(job: Callable[..., Job], loss: str) -> None:
    data = synthetic_regression()
    done = job(
        {"predictor_type": "regressor", "loss": loss, "mini_batch_size": "32", "epochs": "20"},
        {"train": data[:800], "validation": data[800:]},
    )
    assert done.rc == 0, done.failure
    assert f"validation {ll.OBJECTIVE_NAMES[loss]} <loss>=" in done.log
    assert metrics(done.log)["validation:absolute_loss"] < 0.5


def test_quantile_loss_moves_the_prediction(job: Callable[..., Job]) -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(2000, 1))
    labels = features[:, 0] + rng.normal(size=2000)
    data = np.column_stack([labels, features])
    hp = {"predictor_type": "regressor", "loss": "quantile_loss", "mini_batch_size": "50", "epochs": "20"}
    low = job({**hp, "quantile": "0.1"}, {"train": data}).model()
    high = job({**hp, "quantile": "0.9"}, {"train": data}).model()
    gap = float(high.bias[0] - low.bias[0])
    assert 1.8 < gap < 3.4  # 2 * 1.28 for unit normal noise


# -- RecordIO-protobuf ------------------------------------------------------------------------------


def record_class() -> Any:
    """aialgs.data.Record (the SageMaker SDK's record.proto) built with the real protobuf library."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="homeport_test_record.proto", package="aialgs.data")
    proto.syntax = "proto2"
    for name, kind in (
        ("Float32Tensor", F.TYPE_FLOAT),
        ("Float64Tensor", F.TYPE_DOUBLE),
        ("Int32Tensor", F.TYPE_INT32),
    ):
        message = proto.message_type.add(name=name)
        for field_name, number, field_type in (
            ("values", 1, kind),
            ("keys", 2, F.TYPE_UINT64),
            ("shape", 3, F.TYPE_UINT64),
        ):
            added = message.field.add(name=field_name, number=number, type=field_type, label=F.LABEL_REPEATED)
            added.options.packed = True
    value = proto.message_type.add(name="Value")
    value.oneof_decl.add(name="value")
    for field_name, number, type_name in (
        ("float32_tensor", 2, "Float32Tensor"),
        ("float64_tensor", 3, "Float64Tensor"),
        ("int32_tensor", 7, "Int32Tensor"),
    ):
        value.field.add(
            name=field_name,
            number=number,
            type=F.TYPE_MESSAGE,
            type_name=f".aialgs.data.{type_name}",
            label=F.LABEL_OPTIONAL,
            oneof_index=0,
        )
    record = proto.message_type.add(name="Record")
    for field_name, number, entry_name in (("features", 1, "FeaturesEntry"), ("label", 2, "LabelEntry")):
        entry = record.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
        entry.field.add(
            name="value",
            number=2,
            type=F.TYPE_MESSAGE,
            type_name=".aialgs.data.Value",
            label=F.LABEL_OPTIONAL,
        )
        record.field.add(
            name=field_name,
            number=number,
            type=F.TYPE_MESSAGE,
            type_name=f".aialgs.data.Record.{entry_name}",
            label=F.LABEL_REPEATED,
        )
    record.field.add(name="uid", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


def sdk_recordio(features: np.ndarray, labels: np.ndarray | None = None, sparse: bool = False) -> bytes:
    """What sagemaker.amazon.common.write_numpy_to_dense_tensor (or the sparse writer) produces."""
    Record = record_class()
    out = io.BytesIO()
    for i, row in enumerate(features):
        record = Record()
        tensor = (
            record.features["values"].float64_tensor
            if row.dtype == np.float64
            else (record.features["values"].float32_tensor)
        )
        if sparse:
            keys = np.flatnonzero(row)
            tensor.values.extend(row[keys].tolist())
            tensor.keys.extend(keys.tolist())
            tensor.shape.extend([len(row)])
        else:
            tensor.values.extend(row.tolist())
        if labels is not None:
            record.label["values"].int32_tensor.values.extend([int(labels[i])])
        payload = record.SerializeToString()
        out.write(struct.pack("<II", 0xCED7230A, len(payload)))
        out.write(payload + b"\0" * (-len(payload) % 4))
    return out.getvalue()


def test_recordio_protobuf_round_trips_with_the_protobuf_library() -> None:
    rows = np.array([[1.5, 0.0, -2.25], [0.0, 3.0, 0.0]])
    features, labels = ll.records_to_arrays(sdk_recordio(rows, np.array([1, 0])))
    np.testing.assert_array_equal(features, rows)
    np.testing.assert_array_equal(labels, [1.0, 0.0])
    sparse, _ = ll.records_to_arrays(sdk_recordio(rows, np.array([-3, 7]), sparse=True))
    np.testing.assert_array_equal(sparse, rows)
    float32, _ = ll.records_to_arrays(sdk_recordio(rows.astype(np.float32)), with_labels=False)
    np.testing.assert_array_equal(float32, rows)
    # And what Homeport writes, the protobuf library reads.
    Record = record_class()
    payloads = list(ll.iter_recordio(ll.write_dense_recordio(rows, [1.0, 0.0])))
    parsed = Record.FromString(payloads[1])
    assert list(parsed.features["values"].float32_tensor.values) == [0.0, 3.0, 0.0]
    assert list(parsed.label["values"].float32_tensor.values) == [0.0]


@pytest.mark.parametrize("content_type", ["application/x-recordio-protobuf", None])
def test_training_on_recordio_protobuf(job: Callable[..., Job], content_type: str | None) -> None:
    train, validation = cancer()
    channels = {
        "train": {"train.rec": sdk_recordio(train[:, 1:].astype(np.float32), train[:, 0])},
        "validation": {"validation.rec": sdk_recordio(validation[:, 1:], validation[:, 0])},
    }
    done = job(
        {"predictor_type": "binary_classifier", "feature_dim": "30"}, channels, content_type=content_type
    )
    assert done.rc == 0, done.failure
    assert metrics(done.log)["validation:binary_classification_accuracy"] >= 0.9


# -- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hyperparameters", "named"),
    [
        ({}, "predictor_type"),
        ({"predictor_type": "classifier"}, "predictor_type"),
        ({"predictor_type": "multiclass_classifier"}, "num_classes"),
        ({"predictor_type": "multiclass_classifier", "num_classes": "2"}, "num_classes"),
        ({"predictor_type": "binary_classifier", "epochs": "0"}, "epochs"),
        ({"predictor_type": "binary_classifier", "mini_batch_size": "many"}, "mini_batch_size"),
        ({"predictor_type": "binary_classifier", "learning_rate": "-0.1"}, "learning_rate"),
        ({"predictor_type": "binary_classifier", "optimizer": "lbfgs"}, "optimizer"),
        ({"predictor_type": "binary_classifier", "loss": "softmax_loss"}, "loss"),
        ({"predictor_type": "regressor", "loss": "logistic"}, "loss"),
        ({"predictor_type": "binary_classifier", "l1": "auto-ish"}, "l1"),
        ({"predictor_type": "binary_classifier", "normalize_data": "maybe"}, "normalize_data"),
        ({"predictor_type": "binary_classifier", "use_bias": "auto"}, "use_bias"),
        (
            {"predictor_type": "binary_classifier", "positive_example_weight_mult": "0"},
            "positive_example_weight_mult",
        ),
        (
            {"predictor_type": "binary_classifier", "binary_classifier_model_selection_criteria": "auc"},
            "binary_classifier_model_selection_criteria",
        ),
        ({"predictor_type": "binary_classifier", "target_recall": "1.5"}, "target_recall"),
        ({"predictor_type": "binary_classifier", "feature_dim": "0"}, "feature_dim"),
        ({"predictor_type": "binary_classifier", "num_models": "auto?"}, "num_models"),
        (
            {"predictor_type": "binary_classifier", "early_stopping_patience": "1.5"},
            "early_stopping_patience",
        ),
        ({"predictor_type": "binary_classifier", "learning_rat": "0.1"}, "learning_rat"),
    ],
)
def test_invalid_hyperparameters_fail_naming_the_field(
    job: Callable[..., Job], hyperparameters: dict[str, str], named: str
) -> None:
    train, _validation = cancer()
    done = job(hyperparameters, {"train": train[:50]})
    assert done.rc != 0
    assert done.failure.startswith("ClientError: ")
    assert f"'{named}'" in done.failure
    assert not (done.model_dir / ll.MODEL_FILE).exists()


def test_hyperparameter_values_as_the_sdk_and_the_api_send_them() -> None:
    hp = ll.parse_hyperparameters(
        {
            "predictor_type": '"multiclass_classifier"',  # JSON-encoded, as framework estimators do
            "num_classes": 4,
            "use_bias": "True",  # str(True), as the SageMaker SDK writes booleans
            "normalize_data": "auto",
            "learning_rate": "0.05",
            "mini_batch_size": "200.0",
            "_tuning_objective_metric": "validation:multiclass_accuracy",
            "sagemaker_region": '"us-east-1"',
        }
    )
    assert hp["predictor_type"] == "multiclass_classifier" and hp["num_classes"] == 4
    assert hp["use_bias"] is True and hp["normalize_data"] == "auto"
    assert hp["learning_rate"] == 0.05 and hp["mini_batch_size"] == 200
    assert hp["loss"] == "softmax_loss" and hp["num_models"] == 1  # tuning turns the internal tuning off
    assert hp["epochs"] == 15 and hp["wd"] == "auto" and hp["early_stopping_tolerance"] == 0.001
    # num_classes is ignored (not validated) unless the predictor is multiclass.
    assert (
        ll.parse_hyperparameters({"predictor_type": "regressor", "num_classes": "x"})["num_classes"] is None
    )


def test_missing_required_hyperparameter_uses_sagemaker_wording(job: Callable[..., Job]) -> None:
    done = job({"epochs": "3"}, {"train": cancer()[0][:50]})
    assert done.failure == (
        "ClientError: No value(s) were specified for 'predictor_type' which are required hyperparameter(s) "
        "(caused by ValidationError)"
    )


def test_data_problems_fail_with_a_clear_reason(job: Callable[..., Job]) -> None:
    train, validation = cancer()
    binary = {"predictor_type": "binary_classifier"}
    cases = [
        (job({**binary, "feature_dim": "29"}, {"train": train}), "feature_dim (29)"),
        (job(binary, {"train": train, "validation": validation[:, :-1]}), "'validation' channel (29)"),
        (job(binary, {"train": np.column_stack([train[:, 0] * 2, train[:, 1:]])}), "labels must be 0 or 1"),
        (
            job(
                {"predictor_type": "multiclass_classifier", "num_classes": "3"},
                {"train": iris()[0] + [[1, 0, 0, 0, 0]]},
            ),
            "labels must be integers from 0 to num_classes - 1",
        ),
        (job(binary, {"train": {"a.csv": b"label,f1\n1,2\n"}}), "Unable to parse"),
        (job(binary, {"train": {"a.csv": b"1,2,3\n0,1\n"}}), "Unable to parse"),
        (
            job(binary, {"train": {"a.parquet": b"PAR1"}}, content_type="application/x-parquet"),
            "not supported",
        ),
        (job(binary, {"train": {}}), "No training data"),
        (job(binary, {"train": train, "training": train}), "'training'"),
    ]
    for done, reason in cases:
        assert done.rc == 1, reason
        assert done.failure.startswith("ClientError: "), done.failure
        assert reason in done.failure, (reason, done.failure)


def test_train_executable_exit_codes(tmp_path: Path) -> None:
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path / "bad")}
    prepare(tmp_path / "bad", {"predictor_type": "nope"}, {"train": cancer()[0][:20]})
    failed = subprocess.run([sys.executable, str(IMAGE / "train")], env=env, capture_output=True, text=True)
    assert failed.returncode == 1
    assert "predictor_type" in (tmp_path / "bad" / "output" / "failure").read_text()
    env["SAGEMAKER_BASE_DIR"] = str(tmp_path / "good")
    prepare(tmp_path / "good", {"predictor_type": "binary_classifier", "epochs": "2"}, {"train": cancer()[0]})
    ok = subprocess.run([sys.executable, str(IMAGE / "train")], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout[-2000:]
    assert "#quality_metric: host=algo-1, train binary_classification_accuracy <score>=" in ok.stdout
    assert (tmp_path / "good" / "model" / ll.ONNX_FILE).exists()


def test_image_folder() -> None:
    for script in ("train", "serve"):
        path = IMAGE / script
        assert path.read_text().startswith("#!/usr/bin/env python\n")
        assert os.access(path, os.X_OK)
    assert 'main(default_handler="linear_learner_handler")' in (IMAGE / "serve").read_text()
    pins = (IMAGE / "requirements.txt").read_text().split()
    assert all("==" in pin for pin in pins)
    names = {pin.split("==")[0].split("[")[0] for pin in pins}
    assert {"numpy", "onnx", "uvicorn", "httptools", "boto3"} <= names
    dockerfile = (IMAGE / "Dockerfile").read_text()
    assert "FROM localhost/homeport/python-base:bookworm" in dockerfile
    assert "ENTRYPOINT" not in dockerfile


# -- the model and ONNX -----------------------------------------------------------------------------


def test_threshold_calibration() -> None:
    scores = np.array([0.1, 0.2, 0.35, 0.4, 0.8, 0.9])
    labels = np.array([0, 0, 1, 0, 1, 1])
    threshold, accuracy = ll.calibrate(scores, labels, "accuracy", 0.5)
    assert accuracy == pytest.approx(5 / 6)
    assert 0.4 < threshold < 0.8 or 0.2 < threshold < 0.35
    threshold, recall = ll.calibrate(scores, labels, "recall_at_target_precision", 0.5, target_precision=0.7)
    assert recall == 1.0 and 0.2 < threshold < 0.35
    assert ll.roc_auc(scores, labels) == pytest.approx(8 / 9)


@pytest.mark.parametrize("predictor_type", ["binary_classifier", "multiclass_classifier", "regressor"])
def test_onnx_model_predicts_like_the_native_one(trained: dict[str, Job], predictor_type: str) -> None:
    import onnxruntime

    done = trained[predictor_type]
    model = done.model()
    features = {
        "binary_classifier": cancer()[1][:, 1:],
        "multiclass_classifier": iris()[1][:, 1:],
        "regressor": synthetic_regression()[900:, 1:],
    }[predictor_type]
    session = onnxruntime.InferenceSession(
        str(done.model_dir / ll.ONNX_FILE), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == ["features"]
    outputs = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {"features": features.astype(np.float32)}),
            strict=True,
        )
    )
    scores, labels = model.predict(features)
    np.testing.assert_allclose(outputs["score"], scores, rtol=1e-4, atol=1e-5)
    if labels is None:
        assert set(outputs) == {"score"}
    else:
        np.testing.assert_array_equal(outputs["predicted_label"], labels)


# -- serving ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(trained: dict[str, Job]) -> dict[str, ll.LinearModel]:
    return {name: handler.model_fn(str(done.model_dir)) for name, done in trained.items()}


def answer(
    model: ll.LinearModel, data: Any, content_type: str, accept: str | None = "application/json"
) -> Any:
    body, returned_type = handler.transform_fn(model, data, content_type, accept)
    assert isinstance(body, bytes)
    if returned_type == "application/json":
        return json.loads(body)
    if returned_type == "application/jsonlines":
        return [json.loads(line) for line in body.decode().splitlines()]
    return body.decode()


def csv_rows(rows: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


def test_binary_responses(models: dict[str, ll.LinearModel]) -> None:
    model = models["binary_classifier"]
    features = cancer()[1][:5, 1:]
    scores, labels = model.predict(features)
    assert labels is not None
    expected = [
        {"score": float(np.float32(s)), "predicted_label": int(label)}
        for s, label in zip(scores, labels, strict=True)
    ]
    assert answer(model, csv_rows(features), "text/csv") == {"predictions": expected}
    assert answer(model, csv_rows(features[:1]), "text/csv") == {"predictions": expected[:1]}
    assert answer(model, csv_rows(features), "text/csv", "application/jsonlines") == expected
    assert answer(model, csv_rows(features), "text/csv", "text/csv") == "\n".join(
        f"{e['predicted_label']},{e['score']!r}" for e in expected
    )
    assert answer(model, csv_rows(features), "text/csv", None) == {"predictions": expected}
    assert answer(model, csv_rows(features), "text/csv; charset=utf-8", "*/*") == {"predictions": expected}
    instances = {"instances": [{"features": row.tolist()} for row in features]}
    assert answer(model, json.dumps(instances), "application/json") == {"predictions": expected}
    nested = {"instances": [{"data": {"features": {"values": row.tolist()}}} for row in features]}
    assert answer(model, json.dumps(nested), "application/json") == {"predictions": expected}
    lines = "\n".join(json.dumps({"features": row.tolist()}) for row in features).encode()
    assert answer(model, lines, "application/jsonlines", "application/jsonlines") == expected
    first = json.loads(handler.transform_fn(model, csv_rows(features[:1]), "text/csv", "application/json")[0])
    assert 0.0 <= first["predictions"][0]["score"] <= 1.0 and first["predictions"][0]["predicted_label"] in (
        0,
        1,
    )


def test_multiclass_and_regressor_responses(models: dict[str, ll.LinearModel]) -> None:
    multiclass = models["multiclass_classifier"]
    rows = iris()[1][:3, 1:]
    probabilities, labels = multiclass.predict(rows)
    assert labels is not None
    predictions = answer(multiclass, csv_rows(rows), "text/csv")["predictions"]
    assert [p["predicted_label"] for p in predictions] == labels.tolist()
    for prediction, expected in zip(predictions, probabilities, strict=True):
        assert len(prediction["score"]) == 3
        np.testing.assert_allclose(prediction["score"], expected, rtol=1e-6)
    assert answer(multiclass, csv_rows(rows), "text/csv", "application/jsonlines") == predictions
    first = answer(multiclass, csv_rows(rows), "text/csv", "text/csv").splitlines()[0].split(",")
    assert int(first[0]) == labels[0] and len(first) == 4

    regressor = models["regressor"]
    rows = synthetic_regression()[:2, 1:]
    values, _ = regressor.predict(rows)
    expected = [{"score": float(np.float32(v))} for v in values]
    assert answer(regressor, csv_rows(rows), "text/csv") == {"predictions": expected}
    assert answer(regressor, csv_rows(rows), "text/csv", "application/jsonlines") == expected
    assert answer(regressor, csv_rows(rows), "text/csv", "text/csv") == "\n".join(
        repr(e["score"]) for e in expected
    )


def test_sparse_json_and_recordio_requests(models: dict[str, ll.LinearModel]) -> None:
    model = models["regressor"]
    row = np.array([0.0, 100.0, 0.0, 2.0, 7.0])
    sparse = {
        "instances": [{"data": {"features": {"keys": [1, 3, 4], "values": [100.0, 2.0, 7.0], "shape": [5]}}}]
    }
    dense = answer(model, csv_rows(row[None, :]), "text/csv")
    assert answer(model, json.dumps(sparse), "application/json") == dense
    # The SageMaker SDK's LinearLearnerPredictor: RecordIO-protobuf both ways.
    Record = record_class()
    body, content_type = handler.transform_fn(
        model,
        sdk_recordio(np.vstack([row, row])),
        "application/x-recordio-protobuf",
        "application/x-recordio-protobuf",
    )
    assert content_type == "application/x-recordio-protobuf"
    records = [Record.FromString(p) for p in ll.iter_recordio(body)]
    assert len(records) == 2
    assert records[0].label["score"].float32_tensor.values[0] == pytest.approx(
        dense["predictions"][0]["score"]
    )
    binary = models["binary_classifier"]
    features = cancer()[1][:2, 1:]
    body, _ = handler.transform_fn(binary, sdk_recordio(features), "application/x-recordio-protobuf", None)
    assert json.loads(body) == answer(binary, csv_rows(features), "text/csv")
    body, _ = handler.transform_fn(binary, csv_rows(features), "text/csv", "application/x-recordio-protobuf")
    labels = [
        Record.FromString(p).label["predicted_label"].float32_tensor.values[0] for p in ll.iter_recordio(body)
    ]
    expected = binary.predict(features)[1]
    assert expected is not None and labels == [float(v) for v in expected]


@pytest.mark.parametrize(
    ("data", "content_type", "accept", "status"),
    [
        ("1,2,3", "text/csv", "application/json", 400),  # wrong number of features
        ("1,2,3,4,5\n1,2", "text/csv", "application/json", 400),
        ("1,2,x,4,5", "text/csv", "application/json", 400),
        ("", "text/csv", "application/json", 400),
        ('{"instances": [{"values": [1, 2, 3, 4, 5]}]}', "application/json", "application/json", 400),
        ("{not json", "application/json", "application/json", 400),
        (b"\x00\x01", "application/x-recordio-protobuf", "application/json", 400),
        ("1,2,3,4,5", "application/x-npy", "application/json", 415),
        ("1,2,3,4,5", "text/csv", "application/xml", 406),
    ],
)
def test_bad_requests(
    models: dict[str, ll.LinearModel], data: Any, content_type: str, accept: str, status: int
) -> None:
    with pytest.raises(handler.InferenceError) as caught:
        handler.transform_fn(models["regressor"], data, content_type, accept)
    assert caught.value.status_code == status
    assert str(caught.value)


def test_model_fn_finds_a_nested_model(tmp_path: Path, trained: dict[str, Job]) -> None:
    nested = tmp_path / "extracted" / "inner"
    nested.mkdir(parents=True)
    (nested / ll.MODEL_FILE).write_bytes((trained["regressor"].model_dir / ll.MODEL_FILE).read_bytes())
    assert handler.model_fn(str(tmp_path / "extracted")).predictor_type == "regressor"
    with pytest.raises(FileNotFoundError):
        handler.model_fn(str(tmp_path / "empty"))
