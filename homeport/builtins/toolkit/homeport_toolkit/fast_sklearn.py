"""``predict(model, data)``: ``model.predict(data)``, skipping scikit-learn's per-call checks for trees.

For one small request, scikit-learn spends most of a decision tree's ``predict`` validating its
input (~270 of ~300 µs for one iris row; the tree walk itself is ~10 µs). When the model is
exactly a fitted ``DecisionTree*``/``ExtraTree*`` estimator and ``data`` is a plain 2-D numeric
numpy array with the width the model was fitted on and only finite values, this calls
``model.predict(X, check_input=False)`` on a float32 C-contiguous copy, which is what the
validation would have produced (the same values, the same result). Anything else (other
estimators, pipelines, subclasses, data frames, sparse matrices, NaN or infinite values, a
wrong width) goes through ``model.predict(data)`` unchanged, so its errors and warnings are
scikit-learn's own.

An image's default handler (or a user's ``predict_fn``) can use it::

    from homeport_toolkit.fast_sklearn import predict

    def predict_fn(data, model):
        return predict(model, data)
"""

from __future__ import annotations

from typing import Any

import numpy as np

_TREES = frozenset(
    (
        ("sklearn.tree._classes", "DecisionTreeClassifier"),
        ("sklearn.tree._classes", "DecisionTreeRegressor"),
        ("sklearn.tree._classes", "ExtraTreeClassifier"),
        ("sklearn.tree._classes", "ExtraTreeRegressor"),
    )
)
_NUMERIC = frozenset("fiub")


def fast_path_applies(model: Any, data: Any) -> bool:
    """Whether :func:`predict` may skip scikit-learn's validation for this model and data."""
    kind = type(model)
    if (kind.__module__, kind.__name__) not in _TREES or getattr(model, "tree_", None) is None:
        return False
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.dtype.kind not in _NUMERIC:
        return False
    return data.shape[0] > 0 and data.shape[1] == getattr(model, "n_features_in_", -1)


def predict(model: Any, data: Any) -> Any:
    """``model.predict(data)``, fast for a single scikit-learn tree on a finite numeric array."""
    if fast_path_applies(model, data):
        features = np.ascontiguousarray(data, dtype=np.float32)
        if np.isfinite(features).all():
            return model.predict(features, check_input=False)
    return model.predict(data)
