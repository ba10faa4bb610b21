"""Defaults of the scikit-learn framework image, as the SageMaker scikit-learn container has them:
``model_fn`` must come from the user's script; predictions are ``model.predict``'s."""

from __future__ import annotations

from typing import Any

from homeport_toolkit import fast_sklearn


def model_fn(model_dir: str) -> Any:
    raise NotImplementedError(
        "Please provide a model_fn implementation in your inference script (SAGEMAKER_PROGRAM); "
        f"it loads the model from {model_dir}"
    )


def predict_fn(data: Any, model: Any) -> Any:
    # model.predict, minus scikit-learn's per-call input checks where that gives the same answer
    # (a fitted tree on a finite numeric array): most of a small model's time per request.
    return fast_sklearn.predict(model, data)
