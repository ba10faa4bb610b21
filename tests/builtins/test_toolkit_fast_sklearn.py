"""homeport_toolkit.fast_sklearn: the same predictions as scikit-learn, without its per-call validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from homeport_toolkit.fast_sklearn import fast_path_applies, predict
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeRegressor


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    data = load_iris()
    return data.data, np.array(["setosa", "versicolor", "virginica"])[data.target]


def test_trees_predict_the_same_as_sklearn(iris: tuple[np.ndarray, np.ndarray]) -> None:
    X, labels = iris
    rng = np.random.default_rng(0)
    probe = np.vstack([X, rng.uniform(0, 8, size=(200, 4))])
    classifier = DecisionTreeClassifier(random_state=0).fit(X, labels)
    regressor = DecisionTreeRegressor(random_state=0).fit(X, X[:, 0] * 2)
    extra = ExtraTreeRegressor(random_state=0).fit(X, np.c_[X[:, 0], X[:, 1]])  # two outputs
    integer_probe = probe.round().astype(np.int64)
    for model in (classifier, regressor, extra):
        for data in (probe, integer_probe, np.asfortranarray(probe)):
            assert fast_path_applies(model, data)
            assert np.array_equal(predict(model, data), model.predict(data))
    assert predict(classifier, X[:1]).tolist() == ["setosa"]


def test_everything_else_goes_through_sklearn(iris: tuple[np.ndarray, np.ndarray]) -> None:
    X, labels = iris
    tree = DecisionTreeClassifier(random_state=0).fit(X, labels)
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, labels)
    pipeline = make_pipeline(StandardScaler(), DecisionTreeClassifier(random_state=0)).fit(X, labels)

    class Custom(DecisionTreeClassifier):
        pass

    custom = Custom(random_state=0).fit(X, labels)
    for model in (forest, pipeline, custom):
        assert not fast_path_applies(model, X)
        assert np.array_equal(predict(model, X), model.predict(X))
    assert not fast_path_applies(tree, X.tolist())
    assert not fast_path_applies(tree, X[0])
    assert not fast_path_applies(tree, X.astype(str))
    assert not fast_path_applies(DecisionTreeClassifier(), X)  # not fitted
    with pytest.raises(ValueError, match="expecting 4 features"):
        predict(tree, X[:, :2])
    with pytest.raises(ValueError, match="infinity|too large"):
        predict(tree, np.array([[np.inf, 1.0, 1.0, 1.0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nan_row = np.array([[np.nan, 3.5, 1.4, 0.2]])
        try:
            expected = tree.predict(nan_row)
        except ValueError:
            with pytest.raises(ValueError):
                predict(tree, nan_row)
        else:
            assert np.array_equal(predict(tree, nan_row), expected)
