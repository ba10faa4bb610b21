"""Built-in algorithms and framework containers through boto3, by the image URIs the SDK writes.

Runs on both runtimes (the session ``server`` fixture): on the process runtime a built-in is a
folder image with a cached venv; on the docker runtime an image built from its Dockerfile. The
first job of each built-in pays for that (tens of seconds), hence the generous timeouts.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from e2e_support import IRIS, ROLE, Server, training_request, wait_for
from test_endpoints import in_service, runtime

XGBOOST = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
LINEAR_LEARNER = "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ONNX = "homeport-onnx"
FIRST_BUILD_TIMEOUT = 900
TOOLKIT_IMAGE = Path(__file__).parent / "images" / "sagemaker_training"
SPECIES = {"setosa": 0, "versicolor": 1, "virginica": 2}


def iris_numeric() -> np.ndarray:
    rows = []
    for line in IRIS.read_text().splitlines():
        label, *features = line.split(",")
        rows.append([SPECIES[label], *map(float, features)])
    return np.array(rows)


def write_csv(path: Path, rows: np.ndarray) -> None:
    path.write_text("\n".join(",".join(f"{v:g}" for v in row) for row in rows) + "\n")


def channel(name: str, uri: str, content_type: str = "text/csv") -> dict[str, Any]:
    return {
        "ChannelName": name,
        "ContentType": content_type,
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
    }


def deploy(
    sm: Any, name: str, image: str, model_url: str, env: dict[str, str] | None = None, wait: bool = True
) -> None:
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": image, "ModelDataUrl": model_url, "Environment": env or {}},
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if wait:
        in_service(sm, name)


def invoke(server: Server, endpoint: str, body: str, content_type: str, accept: str) -> str:
    response = runtime(server).invoke_endpoint(
        EndpointName=endpoint, Body=body.encode(), ContentType=content_type, Accept=accept
    )
    return str(response["Body"].read().decode())


def cleanup(sm: Any, name: str) -> None:
    sm.delete_endpoint(EndpointName=name)
    sm.delete_endpoint_config(EndpointConfigName=name)
    sm.delete_model(ModelName=name)


@pytest.fixture(scope="module")
def iris_split(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data = iris_numeric()
    rng = np.random.default_rng(7)
    order = rng.permutation(len(data))
    train, validation = data[order[:120]], data[order[120:]]
    folder = tmp_path_factory.mktemp("iris")
    write_csv(folder / "train.csv", train)
    write_csv(folder / "validation.csv", validation)
    prefix = f"s3://builtins/iris-{server.runtime}"
    server.cp(str(folder / "train.csv"), f"{prefix}/train/train.csv")
    server.cp(str(folder / "validation.csv"), f"{prefix}/validation/validation.csv")
    return {"train": train, "validation": validation, "prefix": prefix}


def test_builtin_xgboost_trains_reports_metrics_and_serves_like_xgboost(
    server: Server, sm: Any, iris_split: dict[str, Any], tmp_path: Path
) -> None:
    name = f"xgb-iris-{server.runtime}"
    hyperparameters = {
        "objective": "multi:softprob",
        "num_class": "3",
        "num_round": "12",
        "max_depth": "3",
        "eta": "0.3",
        "eval_metric": "merror",
        "seed": "1",
    }
    prefix = iris_split["prefix"]
    sm.create_training_job(
        **training_request(
            name,
            image=XGBOOST,
            HyperParameters=hyperparameters,
            InputDataConfig=[
                channel("train", f"{prefix}/train"),
                channel("validation", f"{prefix}/validation"),
            ],
            OutputDataConfig={"S3OutputPath": f"{prefix}/output"},
        )
    )
    desc = wait_for(sm, name, timeout=FIRST_BUILD_TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in desc.get("FinalMetricDataList", [])}
    assert {"train:merror", "validation:merror"} <= set(metrics), metrics
    assert 0.0 <= metrics["validation:merror"] <= 0.2

    archive = tmp_path / "model.tar.gz"
    model_url = desc["ModelArtifacts"]["S3ModelArtifacts"]
    server.cp(model_url, str(archive))
    with tarfile.open(archive) as tar:
        names = {n.removeprefix("./") for n in tar.getnames()}
    assert {"xgboost-model", "model.onnx"} <= names

    # The endpoint answers what xgboost itself predicts with the trained model file (training
    # parity with xgboost called directly is checked in tests/builtins, on the same version).
    with tarfile.open(archive) as tar:
        tar.extract("xgboost-model", tmp_path, filter="data")
    booster = xgb.Booster()
    booster.load_model(str(tmp_path / "xgboost-model"))
    rows = iris_split["validation"][:5, 1:]
    expected = booster.predict(xgb.DMatrix(rows))

    deploy(sm, name, XGBOOST, model_url)
    try:
        body = "\n".join(",".join(f"{v:g}" for v in row) for row in rows)
        answer = invoke(server, name, body, "text/csv", "text/csv")
        got = np.array([[float(v) for v in line.split(",")] for line in answer.strip().splitlines()])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        as_json = json.loads(invoke(server, name, body, "text/csv", "application/json"))
        assert len(as_json["predictions"]) == 5
    finally:
        cleanup(sm, name)

    # The same model served by the built-in ONNX image answers the same probabilities.
    onnx_name = f"onnx-iris-{server.runtime}"
    deploy(sm, onnx_name, ONNX, model_url)
    try:
        body = "\n".join(",".join(f"{v:g}" for v in row) for row in rows)
        answer = json.loads(invoke(server, onnx_name, body, "text/csv", "application/json"))
        assert len(answer["predictions"]) == 5
        flat = json.dumps(answer)
        assert all(str(int(np.argmax(p))) in flat for p in expected)
    finally:
        cleanup(sm, onnx_name)


def test_builtin_xgboost_rejects_bad_hyperparameters(
    server: Server, sm: Any, iris_split: dict[str, Any]
) -> None:
    name = f"xgb-bad-{server.runtime}"
    sm.create_training_job(
        **training_request(
            name,
            image=XGBOOST,
            HyperParameters={"objective": "multi:softmax", "num_class": "3"},  # no num_round
            InputDataConfig=[channel("train", f"{iris_split['prefix']}/train")],
        )
    )
    desc = wait_for(sm, name, timeout=FIRST_BUILD_TIMEOUT)
    assert desc["TrainingJobStatus"] == "Failed"
    assert "num_round" in desc["FailureReason"]


def test_builtin_linear_learner_binary_classifier(server: Server, sm: Any, tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    features, labels = load_breast_cancer(return_X_y=True)
    data = np.column_stack([labels, features])
    rng = np.random.default_rng(3)
    data = data[rng.permutation(len(data))]
    train, validation = data[:450], data[450:]
    write_csv(tmp_path / "train.csv", train)
    write_csv(tmp_path / "validation.csv", validation)
    prefix = f"s3://builtins/cancer-{server.runtime}"
    server.cp(str(tmp_path / "train.csv"), f"{prefix}/train/train.csv")
    server.cp(str(tmp_path / "validation.csv"), f"{prefix}/validation/validation.csv")
    name = f"ll-cancer-{server.runtime}"
    sm.create_training_job(
        **training_request(
            name,
            image=LINEAR_LEARNER,
            HyperParameters={"predictor_type": "binary_classifier", "feature_dim": "30", "epochs": "15"},
            InputDataConfig=[
                channel("train", f"{prefix}/train"),
                channel("validation", f"{prefix}/validation"),
            ],
            OutputDataConfig={"S3OutputPath": f"{prefix}/output"},
        )
    )
    desc = wait_for(sm, name, timeout=FIRST_BUILD_TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    deploy(sm, name, LINEAR_LEARNER, desc["ModelArtifacts"]["S3ModelArtifacts"])
    try:
        body = "\n".join(",".join(f"{v:g}" for v in row[1:]) for row in validation)
        answer = json.loads(invoke(server, name, body, "text/csv", "application/json"))
        predictions = answer["predictions"]
        assert len(predictions) == len(validation)
        assert all(0.0 <= p["score"] <= 1.0 and p["predicted_label"] in (0, 1) for p in predictions)
        labels = validation[:, 0].astype(int).tolist()
        hits = [p["predicted_label"] == label for p, label in zip(predictions, labels, strict=True)]
        assert np.mean(hits) >= 0.9
    finally:
        cleanup(sm, name)


TRAIN_SCRIPT = """
import argparse, json, os
import joblib
import numpy as np
from sklearn.tree import DecisionTreeClassifier

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-depth", type=int, default=2)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    args = parser.parse_args()
    data = np.loadtxt(os.path.join(args.train, "train.csv"), delimiter=",")
    model = DecisionTreeClassifier(max_depth=args.max_depth, random_state=0).fit(data[:, 1:], data[:, 0])
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
    seen = {k: v for k, v in os.environ.items() if k.startswith("SM_")}
    json.dump({"env": seen, "depth": args.max_depth}, open(os.path.join(args.model_dir, "seen.json"), "w"))
"""


def test_sklearn_entry_point_script_mode_and_model_fn(
    server: Server, sm: Any, iris_split: dict[str, Any], tmp_path: Path
) -> None:
    source = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(source, "w:gz") as tar:
        data = TRAIN_SCRIPT.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    prefix = iris_split["prefix"]
    source_uri = f"{prefix}/code-{uuid.uuid4().hex[:6]}/sourcedir.tar.gz"
    server.cp(str(source), source_uri)
    name = f"skl-iris-{server.runtime}"
    sm.create_training_job(
        **training_request(
            name,
            image=SKLEARN,
            HyperParameters={
                "max-depth": "3",
                "sagemaker_program": json.dumps("train.py"),
                "sagemaker_submit_directory": json.dumps(source_uri),
                "sagemaker_region": json.dumps("us-east-1"),
                "sagemaker_container_log_level": "20",
            },
            InputDataConfig=[channel("train", f"{prefix}/train")],
            OutputDataConfig={"S3OutputPath": f"{prefix}/output"},
        )
    )
    desc = wait_for(sm, name, timeout=FIRST_BUILD_TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    archive = tmp_path / "model.tar.gz"
    server.cp(desc["ModelArtifacts"]["S3ModelArtifacts"], str(archive))
    with tarfile.open(archive) as tar:
        names = {n.removeprefix("./") for n in tar.getnames()}
        seen = json.load(tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("seen.json"))))  # type: ignore[arg-type]
    assert {"model.joblib", "model.onnx"} <= names
    assert seen["depth"] == 3  # the hyperparameter arrived as --max-depth 3
    env = seen["env"]
    assert env["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert env["SM_MODEL_DIR"] == "/opt/ml/model"
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert json.loads(env["SM_HPS"]) == {"max-depth": 3}
    assert env["SM_USER_ARGS"] == '["--max-depth","3"]'

    # Serve it: the script rides in the model archive's code/ folder, as the SDK repacks it.
    served = tmp_path / "served.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(served, "w:gz") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        data = TRAIN_SCRIPT.encode()
        info = tarfile.TarInfo("code/train.py")
        info.size = len(data)
        dst.addfile(info, io.BytesIO(data))
    served_uri = f"{prefix}/served-{uuid.uuid4().hex[:6]}/model.tar.gz"
    server.cp(str(served), served_uri)
    deploy(sm, name, SKLEARN, served_uri, {"SAGEMAKER_PROGRAM": "train.py"})
    try:
        rows = iris_split["validation"][:4, 1:]
        answer = json.loads(
            invoke(server, name, json.dumps(rows.tolist()), "application/json", "application/json")
        )
        assert len(answer) == 4 and all(label in (0.0, 1.0, 2.0) for label in answer)
    finally:
        cleanup(sm, name)

    # Serve it as the SDK does when it does not repack: the trained model.tar.gz as it is, the
    # code named by SAGEMAKER_SUBMIT_DIRECTORY in S3. The instance has no network: the server
    # stages the archive into /opt/ml/code.
    remote = f"{name}-remote"
    code_env = {"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": source_uri}
    deploy(sm, remote, SKLEARN, desc["ModelArtifacts"]["S3ModelArtifacts"], code_env)
    try:
        rows = iris_split["validation"][:3, 1:]
        answer = json.loads(
            invoke(server, remote, json.dumps(rows.tolist()), "application/json", "application/json")
        )
        assert len(answer) == 3 and all(label in (0.0, 1.0, 2.0) for label in answer)
    finally:
        cleanup(sm, remote)

    # A submit directory that is not there fails the endpoint, naming it.
    missing = f"{name}-nocode"
    missing_uri = f"{prefix}/no-such-code/sourcedir.tar.gz"
    missing_env = {**code_env, "SAGEMAKER_SUBMIT_DIRECTORY": missing_uri}
    deploy(sm, missing, SKLEARN, desc["ModelArtifacts"]["S3ModelArtifacts"], missing_env, wait=False)
    try:
        deadline = time.monotonic() + 60
        while (status := sm.describe_endpoint(EndpointName=missing))["EndpointStatus"] == "Creating":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert status["EndpointStatus"] == "Failed"
        assert missing_uri in status["FailureReason"]
    finally:
        cleanup(sm, missing)


def test_builtin_images_are_reused(server: Server, sm: Any, iris_split: dict[str, Any]) -> None:
    """After the first job, a built-in resolves at once: a second XGBoost job starts quickly."""
    name = f"xgb-again-{server.runtime}"
    started = time.time()
    sm.create_training_job(
        **training_request(
            name,
            image=XGBOOST,
            HyperParameters={"objective": "multi:softmax", "num_class": "3", "num_round": "2"},
            InputDataConfig=[channel("train", f"{iris_split['prefix']}/train")],
        )
    )
    desc = wait_for(sm, name, timeout=FIRST_BUILD_TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert time.time() - started < 60


TOOLKIT_SCRIPT = """
import json, os, socket, sys
model_dir = os.environ["SM_MODEL_DIR"]
seen = {k: v for k, v in os.environ.items() if k.startswith("SM_")}
with open(os.path.join(model_dir, "seen.json"), "w") as out:
    json.dump({"argv": sys.argv[1:], "env": seen, "hostname": socket.gethostname()}, out)
print("user script ran", sys.argv[1:])
"""


def test_the_real_sagemaker_training_toolkit_runs_unmodified(
    server: Server, sm: Any, iris_split: dict[str, Any], tmp_path: Path
) -> None:
    """An image with the real sagemaker-training toolkit: it downloads the source dir from
    Homeport's object store through S3_ENDPOINT_URL and runs the entry point."""
    server.add_image(
        "sm-training-toolkit", TOOLKIT_IMAGE, "--requirements", str(TOOLKIT_IMAGE / "requirements.txt")
    )
    source = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(source, "w:gz") as tar:
        data = TOOLKIT_SCRIPT.encode()
        info = tarfile.TarInfo("entry.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    prefix = iris_split["prefix"]
    source_uri = f"{prefix}/toolkit-code/sourcedir.tar.gz"
    server.cp(str(source), source_uri)
    name = f"real-toolkit-{server.runtime}"
    sm.create_training_job(
        **training_request(
            name,
            image="sm-training-toolkit",
            HyperParameters={
                "epochs": "3",
                "name": json.dumps("abc"),
                "sagemaker_program": json.dumps("entry.py"),
                "sagemaker_submit_directory": json.dumps(source_uri),
                "sagemaker_region": json.dumps("us-east-1"),
                "sagemaker_container_log_level": "20",
                "sagemaker_job_name": json.dumps(name),
            },
            InputDataConfig=[channel("train", f"{prefix}/train")],
            OutputDataConfig={"S3OutputPath": f"{prefix}/output"},
        )
    )
    desc = wait_for(sm, name, timeout=FIRST_BUILD_TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    archive = tmp_path / "model.tar.gz"
    server.cp(desc["ModelArtifacts"]["S3ModelArtifacts"], str(archive))
    with tarfile.open(archive) as tar:
        seen = json.load(tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("seen.json"))))  # type: ignore[arg-type]
    assert seen["argv"] == ["--epochs", "3", "--name", "abc"]
    assert seen["hostname"] == "algo-1"
    assert seen["env"]["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert json.loads(seen["env"]["SM_HPS"]) == {"epochs": 3, "name": "abc"}
