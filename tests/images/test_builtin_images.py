"""Built-in image resolution: SageMaker's image URIs → Homeport's built-ins, user images first."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeport.builtins.catalog import BUILTINS, default_metric_definitions, find
from homeport.config import Settings
from homeport.errors import ImageNotFound
from homeport.images.builtin import BuiltinImages, merged_requirements
from homeport.images.model import Image, LocalImage
from homeport.logs.streams import cloudwatch_text
from homeport.storage.endpoint_env import object_store_environment
from homeport.training.metrics import MetricCollector


@pytest.mark.parametrize(
    ("reference", "key"),
    [
        ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1", "xgboost"),
        ("246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.5-1", "xgboost"),
        ("811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1", "xgboost"),
        ("382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1", "linear-learner"),
        ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3", "sklearn"),
        ("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1-cpu-py310", "pytorch"),
        ("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310", "pytorch"),
        ("sagemaker-xgboost", "xgboost"),
    ],
)
def test_sdk_image_uris_name_builtins(reference: str, key: str) -> None:
    found = find(reference)
    if not BUILTINS[key].folder.is_dir():
        pytest.fail(f"built-in {key} has no image folder")
    assert found is not None and found.key == key


@pytest.mark.parametrize(
    "reference", ["my-image:1", "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/model:3", ""]
)
def test_other_references_are_not_builtins(reference: str) -> None:
    assert find(reference) is None


class _Registry:
    def __init__(self, known: dict[str, Image]) -> None:
        self.known = known

    def resolve(self, reference: str) -> Image:
        if reference in self.known:
            return self.known[reference]
        raise ImageNotFound(f"no {reference}")


def _image(name: str) -> LocalImage:
    return LocalImage(name=name, tag="latest", root=Path("/nonexistent"), at="/opt/program")


def test_user_images_win_and_builtins_are_materialised_once(tmp_path: Path) -> None:
    made: list[str] = []

    def materialise(builtin: object, work_dir: Path) -> Image:
        made.append(builtin.key)  # type: ignore[attr-defined]
        return _image(f"homeport-builtin/{made[-1]}")

    mine = _image("sagemaker-xgboost")
    source = BuiltinImages(_Registry({"sagemaker-xgboost:1.7-1": mine}), materialise, tmp_path)
    assert source.resolve("sagemaker-xgboost:1.7-1") is mine  # the user's own image of that name
    assert source.resolve("382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1").name.endswith(
        "linear-learner"
    )
    assert made == ["linear-learner"]
    with pytest.raises(ImageNotFound):
        source.resolve("not-a-builtin:1")


def test_merged_requirements_keep_the_image_pins(tmp_path: Path) -> None:
    image = tmp_path / "image.txt"
    image.write_text("# pins\nnumpy==2.0.0\nxgboost-cpu==3.0.0\n")
    toolkit = tmp_path / "toolkit.txt"
    toolkit.write_text("numpy==1.26.0\nuvicorn[standard]==0.30.0\n")
    assert merged_requirements(image, toolkit).splitlines() == [
        "numpy==2.0.0",
        "xgboost-cpu==3.0.0",
        "uvicorn[standard]==0.30.0",
    ]


def test_builtin_algorithms_bring_their_metric_definitions() -> None:
    spec = {
        "AlgorithmSpecification": {
            "TrainingImage": "1.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
        }
    }
    collector = MetricCollector.from_spec(spec)
    collector.feed(cloudwatch_text("[3]\ttrain-merror:0.05000\tvalidation-merror:0.10000"), 1.0)
    final = {m["MetricName"]: m["Value"] for m in collector.final()}
    assert final == {"train:merror": 0.05, "validation:merror": 0.1}
    # Script mode, or the job's own definitions, replace the algorithm's.
    spec["HyperParameters"] = {"sagemaker_program": '"train.py"'}
    assert default_metric_definitions(spec) == []
    own = [{"Name": "loss", "Regex": "loss=(\\S+)"}]
    assert default_metric_definitions({"AlgorithmSpecification": {"MetricDefinitions": own}}) == own


def test_linear_learner_metric_lines() -> None:
    spec = {"AlgorithmSpecification": {"TrainingImage": "linear-learner:1"}}
    collector = MetricCollector.from_spec(spec)
    collector.feed("#quality_metric: host=algo-1, validation binary_classification_accuracy <score>=0.95", 1)
    collector.feed(
        "#quality_metric: host=algo-1, epoch=3, train "
        "binary_classification_cross_entropy_objective <loss>=0.25",
        2,
    )
    assert {m["MetricName"]: m["Value"] for m in collector.final()} == {
        "validation:binary_classification_accuracy": 0.95,
        "train:objective_loss": 0.25,
    }


def test_cloudwatch_escaping() -> None:
    assert cloudwatch_text("a\tb\x1bc") == "a#011b#033c"
    assert cloudwatch_text("plain text") == "plain text"


def test_containers_are_pointed_at_the_object_store(tmp_path: Path) -> None:
    local = object_store_environment(Settings(data_dir=tmp_path, host="0.0.0.0", port=9000))
    assert local["S3_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert local["AWS_ENDPOINT_URL_S3"] == local["S3_ENDPOINT_URL"]
    remote = object_store_environment(
        Settings(data_dir=tmp_path, object_store="s3", s3_endpoint_url="http://127.0.0.1:5000")
    )
    assert remote == {
        "S3_ENDPOINT_URL": "http://127.0.0.1:5000",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5000",
    }
