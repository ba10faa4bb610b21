"""The classic bring-your-own layout (scikit_bring_your_own decision_trees) trains on iris unmodified."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import docker
import pytest
from e2e_support import DECISION_TREES, IRIS, Server, training_request, wait_for


@pytest.fixture(scope="module")
def decision_trees(server: Server) -> str:
    server.add_image(
        "decision-trees", DECISION_TREES, "--requirements", str(DECISION_TREES / "requirements.txt")
    )
    return "decision-trees"


def test_decision_trees_trains_on_iris(server: Server, sm: Any, tmp_path: Path, decision_trees: str) -> None:
    server.cp(str(IRIS), "s3://sagemaker-data/iris/train/iris.csv")
    channel = {
        "ChannelName": "training",
        "ContentType": "text/csv",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://sagemaker-data/iris/train"}},
    }
    sm.create_training_job(
        **training_request(
            "iris-tree",
            image="decision-trees:latest",
            HyperParameters={"max_leaf_nodes": "5"},
            InputDataConfig=[channel],
            OutputDataConfig={"S3OutputPath": "s3://sagemaker-data/iris/output"},
        )
    )
    desc = wait_for(sm, "iris-tree", timeout=300)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    uri = desc["ModelArtifacts"]["S3ModelArtifacts"]
    assert uri == "s3://sagemaker-data/iris/output/iris-tree/output/model.tar.gz"
    archive = tmp_path / "model.tar.gz"
    server.cp(uri, str(archive))
    with tarfile.open(archive) as tar:
        names = [n.removeprefix("./") for n in tar.getnames()]
        assert "decision-tree-model.pkl" in names
        tar.extractall(tmp_path / "model", filter="data")
    # Load the pickled tree with the image's own interpreter and predict a setosa flower.
    script = (
        "import pickle,sys; m=pickle.load(open(sys.argv[1],'rb'));"
        "print(m.predict([[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]).tolist()); print(m.get_n_leaves())"
    )
    out = run_python_of_image(server, "decision-trees", script, tmp_path / "model", "decision-tree-model.pkl")
    assert out[0] == "['setosa', 'virginica']"
    assert int(out[1]) <= 5  # max_leaf_nodes from hyperparameters.json reached the training code


def test_decision_trees_failure_file(server: Server, sm: Any, decision_trees: str) -> None:
    # No training channel: the classic `train` catches the error, writes /opt/ml/output/failure, exits 255.
    sm.create_training_job(**training_request("iris-broken", image="decision-trees"))
    desc = wait_for(sm, "iris-broken", timeout=120)
    assert desc["TrainingJobStatus"] == "Failed"
    assert "Exception during training" in desc["FailureReason"]


def run_python_of_image(server: Server, image: str, script: str, folder: Path, file_name: str) -> list[str]:
    """``python -c script FILE`` with the image's own interpreter; ``folder`` holds FILE."""
    if server.runtime == "docker":
        output = docker.from_env().containers.run(
            f"{image}:latest",
            ["python", "-c", script, f"/model/{file_name}"],
            volumes={str(folder): {"bind": "/model", "mode": "ro"}},
            network_mode="none",
            remove=True,
        )
        return output.decode().splitlines()
    images = json.loads(server.homeport("image", "ls", "--json", "--data-dir", str(server.data_dir)).stdout)
    venv = next(i["venv"] for i in images if i["name"] == image)
    return subprocess.run(
        [str(Path(venv) / "bin" / "python"), "-c", script, str(folder / file_name)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()
