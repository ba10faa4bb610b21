"""Export the scikit-learn estimator a training script saved as ``model.onnx`` (best effort)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def model_dir() -> Path:
    return Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "model"


def export_onnx() -> bool:
    """True when ``model.onnx`` was written; a model that cannot be converted is only logged."""
    folder = model_dir()
    if (folder / "model.onnx").exists():
        return True
    saved = sorted(p for p in folder.glob("*") if p.suffix in (".joblib", ".pkl") and p.is_file())
    if len(saved) != 1:
        return False
    try:
        import joblib
        import numpy as np
        from skl2onnx import to_onnx

        model = joblib.load(saved[0])
        features = int(getattr(model, "n_features_in_", 0))
        if features <= 0:
            print("model.onnx not written: the estimator does not give its feature count", file=sys.stderr)
            return False
        # No ZipMap: plain probability arrays are several times faster to produce and to read.
        options = {"zipmap": False} if hasattr(model, "predict_proba") else None
        sample = np.zeros((1, features), dtype=np.float32)
        onnx_model = to_onnx(model, sample, target_opset=17, options=options)
        (folder / "model.onnx").write_bytes(onnx_model.SerializeToString())
    except Exception as exc:  # noqa: BLE001 - an optional export never fails the job
        print(f"model.onnx not written: {type(exc).__name__}: {exc}", file=sys.stderr)
        return False
    print(f"Wrote model.onnx from {saved[0].name}", flush=True)
    return True
