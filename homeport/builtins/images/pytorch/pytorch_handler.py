"""Defaults of the PyTorch framework image, as the SageMaker PyTorch inference container has them:
``model_fn`` loads a TorchScript ``model.pth`` (or ``model.pt``) unless the user provides one;
``predict_fn`` runs the model on a float tensor without gradients."""

from __future__ import annotations

import os
from typing import Any


def model_fn(model_dir: str) -> Any:
    import torch

    for name in ("model.pth", "model.pt"):
        path = os.path.join(model_dir, name)
        if os.path.exists(path):
            model = torch.jit.load(path, map_location="cpu")
            model.eval()
            return model
    raise FileNotFoundError(
        f"no model.pth in {model_dir}: save a TorchScript model there, or provide a model_fn in your "
        "inference script (SAGEMAKER_PROGRAM)"
    )


def predict_fn(data: Any, model: Any) -> Any:
    import numpy as np
    import torch

    with torch.no_grad():
        if not isinstance(data, torch.Tensor):
            data = torch.as_tensor(np.asarray(data, dtype=np.float32))
        tensor = data
        return model(tensor).numpy()
