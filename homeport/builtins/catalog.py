"""Homeport's built-in images, and the image URIs of SageMaker's that resolve to them.

SageMaker users name built-in algorithms and framework containers by the ECR URIs the SDK
writes (``sagemaker.image_uris.retrieve("xgboost", region, "1.7-1")`` →
``683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1``). Whatever the
account, region and tag, the repository name decides which built-in answers:

=============================  ==================  ==========================================
repository                     built-in            what it is
=============================  ==================  ==========================================
sagemaker-xgboost, xgboost     xgboost             XGBoost algorithm, and XGBoost script mode
linear-learner                 linear-learner      Linear Learner algorithm (subset)
sagemaker-scikit-learn         sklearn             scikit-learn framework (script mode)
pytorch-training,              pytorch             PyTorch framework (script mode, CPU)
pytorch-inference
homeport-onnx, onnx            onnx                any ``model.onnx`` served with onnxruntime
=============================  ==================  ==========================================

An image the user registered (or built) under the same name wins: built-ins are the fallback.
Each built-in is a folder in ``homeport/builtins/images/`` (``train``/``serve``, a requirements
file and a Dockerfile) to which the in-container toolkit (``homeport_toolkit``) is added.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homeport.images.registry import candidate_names, split_reference

IMAGES_DIR = Path(__file__).with_name("images")
TOOLKIT_DIR = Path(__file__).with_name("toolkit") / "homeport_toolkit"
REQUIREMENTS = "requirements.txt"
_FLOAT = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def _xgboost_metrics() -> tuple[dict[str, str], ...]:
    """SageMaker's metric definitions for the XGBoost algorithm: `[N]#011<channel>-<metric>:<value>`."""
    names = (
        "accuracy",
        "aucpr",
        "auc",
        "error",
        "f1",
        "gamma-deviance",
        "logloss",
        "mae",
        "map",
        "merror",
        "mlogloss",
        "mse",
        "ndcg",
        "poisson-nloglik",
        "rmse",
        "rmsle",
    )
    out = []
    for channel in ("train", "validation"):
        for name in names:
            out.append(
                {
                    "Name": f"{channel}:{name}",
                    "Regex": rf".*\[[0-9]+\].*#011{channel}-{name}:{_FLOAT}.*",
                }
            )
    return tuple(out)


def _linear_learner_metrics() -> tuple[dict[str, str], ...]:
    """The definitions a real Linear Learner job reports (from its DescribeTrainingJob)."""
    q = r"#quality_metric: host=\S+, "
    out = [
        {"Name": "train:progress", "Regex": r"#progress_metric: host=\S+, completed (\S+) %"},
        {
            "Name": "train:throughput",
            "Regex": r"#throughput_metric: host=\S+, train throughput=(\S+) records/second",
        },
        {"Name": "train:objective_loss", "Regex": q + r"epoch=\S+, train \S+_objective <loss>=(\S+)"},
        {
            "Name": "validation:objective_loss",
            "Regex": q + r"epoch=\S+, validation \S+_objective <loss>=(\S+)",
        },
        {"Name": "train:objective_loss:final", "Regex": q + r"train \S+_objective <loss>=(\S+)"},
        {"Name": "validation:objective_loss:final", "Regex": q + r"validation \S+_objective <loss>=(\S+)"},
        {"Name": "test:objective_loss", "Regex": q + r"test \S+_objective <loss>=(\S+)"},
    ]
    per_channel = {
        "binary_classification_accuracy": ("train", "validation", "test"),
        "binary_f_beta": ("train", "validation", "test"),
        "precision": ("train", "validation", "test"),
        "recall": ("train", "validation", "test"),
        "roc_auc_score": ("validation", "test"),
        "multiclass_accuracy": ("validation", "test"),
        "multiclass_top_k_accuracy": ("validation", "test"),
        "dcg": ("validation", "test"),
        "macro_precision": ("validation", "test"),
        "macro_recall": ("validation", "test"),
        "macro_f_beta": ("validation", "test"),
        "mse": ("train", "validation", "test"),
        "absolute_loss": ("train", "validation", "test"),
    }
    printed_as = {
        "binary_f_beta": r"binary_f_\S+",
        "multiclass_top_k_accuracy": r"multiclass_top_k_accuracy_\S+",
        "macro_f_beta": r"macro_f_\S+",
    }
    for metric, channels in per_channel.items():
        kind = "<loss>" if metric in ("mse", "absolute_loss") else "<score>"
        for channel in channels:
            out.append(
                {
                    "Name": f"{channel}:{metric}",
                    "Regex": q + rf"{channel} {printed_as.get(metric, metric)} {kind}=(\S+)",
                }
            )
    return tuple(out)


@dataclass(frozen=True)
class Builtin:
    key: str  # also the folder under images/
    repositories: tuple[str, ...]
    description: str
    # The algorithm's own metric definitions, used when a job brings none (algorithm mode).
    metric_definitions: tuple[dict[str, str], ...] = field(default_factory=tuple)

    @property
    def folder(self) -> Path:
        return IMAGES_DIR / self.key

    def digest(self) -> str:
        """A content hash of the image folder and the toolkit: a new Homeport means a new image."""
        h = hashlib.sha256()
        for root in (self.folder, TOOLKIT_DIR):
            for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
                h.update(str(path.relative_to(root)).encode())
                h.update(b"\0")
                h.update(path.read_bytes())
                h.update(b"\0" if not os.access(path, os.X_OK) else b"\1")
        return h.hexdigest()[:16]

    def image_name(self) -> str:
        return f"homeport-builtin/{self.key}"

    def assemble(self, dest: Path) -> Path:
        """Copy the image folder plus the toolkit into ``dest`` (a build context / image folder)."""
        if dest.exists():
            shutil.rmtree(dest)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(self.folder, dest, ignore=ignore)
        shutil.copytree(TOOLKIT_DIR, dest / TOOLKIT_DIR.name, ignore=ignore)
        return dest


BUILTINS: dict[str, Builtin] = {
    b.key: b
    for b in (
        Builtin(
            "xgboost",
            ("sagemaker-xgboost", "xgboost"),
            "XGBoost algorithm (and XGBoost script mode)",
            _xgboost_metrics(),
        ),
        Builtin("linear-learner", ("linear-learner",), "Linear Learner algorithm", _linear_learner_metrics()),
        Builtin("sklearn", ("sagemaker-scikit-learn",), "scikit-learn framework (script mode)"),
        Builtin("pytorch", ("pytorch-training", "pytorch-inference"), "PyTorch framework (script mode, CPU)"),
        Builtin("onnx", ("homeport-onnx", "onnx"), "ONNX models served with onnxruntime"),
    )
}
_BY_REPOSITORY = {repo: b for b in BUILTINS.values() for repo in b.repositories}


def find(reference: str) -> Builtin | None:
    """The built-in a reference names (by its repository, any registry, any tag), else None."""
    name, _tag = split_reference(reference)
    for candidate in candidate_names(name):
        builtin = _BY_REPOSITORY.get(candidate) or _BY_REPOSITORY.get(candidate.rsplit("/", 1)[-1])
        if builtin is not None and builtin.folder.is_dir():
            return builtin
    return None


def default_metric_definitions(spec: dict[str, Any]) -> list[dict[str, str]]:
    """A job's MetricDefinitions, or its built-in algorithm's when it brings none (not script mode)."""
    algorithm = spec.get("AlgorithmSpecification", {})
    given = algorithm.get("MetricDefinitions")
    if given:
        return list(given)
    if "sagemaker_program" in spec.get("HyperParameters", {}):
        return []
    builtin = find(str(algorithm.get("TrainingImage", "")))
    return list(builtin.metric_definitions) if builtin else []
