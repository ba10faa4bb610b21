"""The ONNX image's handler (``homeport/builtins/images/onnx/onnx_handler.py``) on real models.

Models are made here: scikit-learn estimators through skl2onnx (classifiers with and without
ZipMap, string labels, a regressor), an XGBoost classifier through onnxmltools, and a
two-input, two-output graph built with ``onnx.helper``. The handler is loaded from its file, as
the image's toolkit loads it.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "homeport" / "builtins" / "images" / "onnx" / "onnx_handler.py"


def _load_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("onnx_handler", HANDLER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["onnx_handler"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


h = _load_handler()
X, Y = load_iris(return_X_y=True)
X32 = X.astype(np.float32)


def _save(folder: Path, onnx_model: Any) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(onnx_model.SerializeToString())
    return h.model_fn(str(folder))


def _sklearn(folder: Path, estimator: Any, features: int = 4, options: Any = None) -> Any:
    onnx_model = skl2onnx.to_onnx(estimator, X32[:1, :features], target_opset=17, options=options)
    return _save(folder, onnx_model)


def _call(model: Any, body: str | bytes, content_type: str | None, accept: str | None = None) -> Any:
    out, out_type = h.transform_fn(model, body, content_type, accept)
    assert isinstance(out, bytes)
    return json.loads(out) if out_type == "application/json" else out.decode()


def _csv(rows: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows) + "\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-models")


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, Y)


@pytest.fixture(scope="module")
def classifier(folder: Path, forest: RandomForestClassifier) -> Any:
    """skl2onnx's default classifier: a label tensor and ZipMap probabilities (a list of dicts)."""
    return _sklearn(folder / "forest", forest)


@pytest.fixture(scope="module")
def regressor_pair(folder: Path) -> tuple[RandomForestRegressor, Any]:
    reg = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(X[:, :3], X[:, 3])
    return reg, _sklearn(folder / "regressor", reg, features=3)


@pytest.fixture(scope="module")
def two_io(folder: Path) -> Any:
    """A generic graph: inputs a, b [N, 2]; outputs total = a + b, product = a * b."""
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 2])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 2])
    total = helper.make_tensor_value_info("total", TensorProto.FLOAT, [None, 2])
    product = helper.make_tensor_value_info("product", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["total"]), helper.make_node("Mul", ["a", "b"], ["product"])],
        "two_io",
        [a, b],
        [total, product],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _save(folder / "two-io", model)


@pytest.fixture(scope="module")
def identity(folder: Path) -> Any:
    """One float input [N, 3] returned as is: shows exactly how values are written."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _save(folder / "identity", model)


# ---------------------------------------------------------------------------------------------
# Loading


def test_model_fn_uses_one_thread_and_caches_the_input(classifier: Any) -> None:
    assert classifier.session.get_session_options().intra_op_num_threads == 1
    assert [(i.name, i.dtype, i.rank, i.features) for i in classifier.inputs] == [("X", np.float32, 2, 4)]
    assert classifier.is_classifier


def test_model_fn_without_model_onnx(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model.onnx in"):
        h.model_fn(str(tmp_path))


# ---------------------------------------------------------------------------------------------
# A classifier (ZipMap probabilities)


def test_csv_one_row_gives_label_and_class_probabilities(classifier: Any, forest: Any) -> None:
    doc = _call(classifier, "6.2,3.4,5.4,2.3", "text/csv")
    [prediction] = doc["predictions"]
    assert set(prediction) == {"predicted_label", "score"}
    row = [[6.2, 3.4, 5.4, 2.3]]
    assert prediction["predicted_label"] == int(forest.predict(row)[0])
    np.testing.assert_allclose(prediction["score"], forest.predict_proba(row)[0], atol=1e-5)


def test_csv_many_rows_match_predict(classifier: Any, forest: Any) -> None:
    body = _csv(X).replace("\n", "\r\n", 3) + "\n"  # CRLF lines and a trailing blank line
    doc = _call(classifier, body, "text/csv; charset=utf-8", "application/json")
    assert [p["predicted_label"] for p in doc["predictions"]] == forest.predict(X).tolist()
    np.testing.assert_allclose([p["score"] for p in doc["predictions"]], forest.predict_proba(X), atol=1e-5)


def test_csv_out_is_label_then_scores(classifier: Any, forest: Any) -> None:
    text = _call(classifier, _csv(X[:5]), "text/csv", "text/csv")
    lines = text.splitlines()
    assert len(lines) == 5 and text.endswith("\n")
    table = np.array([[float(v) for v in line.split(",")] for line in lines])
    assert table[:, 0].astype(int).tolist() == forest.predict(X[:5]).tolist()
    np.testing.assert_allclose(table[:, 1:], forest.predict_proba(X[:5]), atol=1e-5)


@pytest.mark.parametrize(
    "body",
    [
        {"instances": X[:3].tolist()},
        X[:3].tolist(),
        {"instances": [{"features": row} for row in X[:3].tolist()]},
        {"inputs": X[:3].tolist()},
    ],
    ids=["instances", "bare-list", "features-objects", "inputs"],
)
def test_json_request_shapes(classifier: Any, forest: Any, body: Any) -> None:
    doc = _call(classifier, json.dumps(body), "application/json")
    assert [p["predicted_label"] for p in doc["predictions"]] == forest.predict(X[:3]).tolist()


def test_json_single_row_is_one_row(classifier: Any, forest: Any) -> None:
    doc = _call(classifier, json.dumps(X[50].tolist()), "application/json")
    assert [p["predicted_label"] for p in doc["predictions"]] == forest.predict(X[[50]]).tolist()


def test_npy_request(classifier: Any, forest: Any) -> None:
    buf = io.BytesIO()
    np.save(buf, X[:7])  # float64: cast to the model's float32
    doc = _call(classifier, buf.getvalue(), "application/x-npy")
    assert [p["predicted_label"] for p in doc["predictions"]] == forest.predict(X[:7]).tolist()
    one = io.BytesIO()
    np.save(one, X32[100])
    assert len(_call(classifier, one.getvalue(), "application/x-npy")["predictions"]) == 1


@pytest.mark.parametrize("content_type", [None, "", "application/octet-stream"])
def test_missing_content_type_is_sniffed(classifier: Any, content_type: str | None) -> None:
    buf = io.BytesIO()
    np.save(buf, X32[:2])
    for body in (b"5.1,3.5,1.4,0.2\n6.2,3.4,5.4,2.3", json.dumps(X[:2].tolist()).encode(), buf.getvalue()):
        assert len(_call(classifier, body, content_type)["predictions"]) == 2


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json; charset=utf-8", "application/json"),
        ("text/csv", "text/csv"),
        ("text/*", "text/csv"),
        ("image/png, text/csv;q=0.9", "text/csv"),
    ],
)
def test_accept(classifier: Any, accept: str | None, expected: str) -> None:
    assert h.transform_fn(classifier, "5.1,3.5,1.4,0.2", "text/csv", accept)[1] == expected


def test_string_labels_without_zipmap(folder: Path) -> None:
    names = np.array(["setosa", "versicolor", "virginica"])[Y]
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, names)
    model = _sklearn(folder / "strings", tree, options={"zipmap": False})
    assert model.is_classifier
    doc = _call(model, _csv(X[[0, 60, 120]]), "text/csv")
    assert [p["predicted_label"] for p in doc["predictions"]] == tree.predict(X[[0, 60, 120]]).tolist()
    assert all(len(p["score"]) == 3 for p in doc["predictions"])
    text = _call(model, _csv(X[[0, 60]]), "text/csv", "text/csv")
    assert [line.split(",")[0] for line in text.splitlines()] == tree.predict(X[[0, 60]]).tolist()


def test_xgboost_classifier(folder: Path) -> None:
    xgboost = pytest.importorskip("xgboost")
    pytest.importorskip("onnxmltools")
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = xgboost.XGBClassifier(n_estimators=8, max_depth=3, random_state=0).fit(X, Y)
    inputs = [("input", FloatTensorType([None, 4]))]
    onnx_model = convert_xgboost(booster, initial_types=inputs, target_opset=15)
    model = _save(folder / "xgboost", onnx_model)
    assert model.is_classifier
    doc = _call(model, _csv(X), "text/csv")
    assert [p["predicted_label"] for p in doc["predictions"]] == booster.predict(X).tolist()
    np.testing.assert_allclose([p["score"] for p in doc["predictions"]], booster.predict_proba(X), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# A regressor and generic graphs


def test_regressor_gives_numbers(regressor_pair: tuple[Any, Any]) -> None:
    reg, model = regressor_pair
    assert not model.is_classifier
    doc = _call(model, _csv(X[:10, :3]), "text/csv")
    assert all(isinstance(v, float) for v in doc["predictions"])
    np.testing.assert_allclose(doc["predictions"], reg.predict(X[:10, :3]), rtol=1e-5)
    text = _call(model, json.dumps({"instances": X[:4, :3].tolist()}), "application/json", "text/csv")
    np.testing.assert_allclose([float(v) for v in text.split()], reg.predict(X[:4, :3]), rtol=1e-5)


def test_several_inputs_and_outputs(two_io: Any) -> None:
    body = {"inputs": {"a": [[1, 2], [3, 4]], "b": [[10, 20], [30, 40]]}}
    doc = _call(two_io, json.dumps(body), "application/json")
    assert doc == {
        "predictions": [
            {"total": [11.0, 22.0], "product": [10.0, 40.0]},
            {"total": [33.0, 44.0], "product": [90.0, 160.0]},
        ]
    }
    text = _call(two_io, json.dumps(body), "application/json", "text/csv")
    assert text == "11.0,22.0,10.0,40.0\n33.0,44.0,90.0,160.0\n"
    with pytest.raises(h.BadInput, match="takes 2 inputs"):
        h.transform_fn(two_io, "1,2", "text/csv", None)
    with pytest.raises(h.BadInput, match="unknown model inputs"):
        h.transform_fn(two_io, json.dumps({"inputs": {"c": [[1, 2]]}}), "application/json", None)


def test_floats_are_written_shortest_and_nan_as_null(identity: Any) -> None:
    body = _call(identity, "0.1,2.5,", "text/csv")  # float32 0.1 is written 0.1, not 0.10000000149
    assert body == {"predictions": [[0.1, 2.5, None]]}
    out, _ = h.transform_fn(identity, "0.1,1e-8,3", "text/csv", "text/csv")
    assert out == b"0.1,1e-08,3.0\n"


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        ("1,2,3", "text/csv", "takes 4 features per row; got 3"),
        ("1,2,3,x", "text/csv", "'x' is not a number"),
        ("1,2,3,4\n1,2,3", "text/csv", "CSV line 2 has 3 values; the first line has 4"),
        ("  \n", "text/csv", "CSV body is empty"),
        ("[[1, 2, 3, 4]", "application/json", "not valid JSON"),
        ('{"rows": [[1, 2, 3, 4]]}', "application/json", "JSON must be"),
        ("[[1, 2, 3, 4], [1, 2]]", "application/json", "equal length"),
        ("[]", "application/json", "holds no rows"),
        (b"not npy", "application/x-npy", "not a .npy array"),
        (b"\xff\xfe", "text/csv", "not UTF-8"),
    ],
)
def test_bad_input_is_400(classifier: Any, body: str | bytes, content_type: str, match: str) -> None:
    with pytest.raises(h.BadInput, match=match) as info:
        h.transform_fn(classifier, body, content_type, None)
    assert info.value.status_code == 400
    assert isinstance(info.value, ValueError)


def test_unsupported_content_type_is_415(classifier: Any) -> None:
    with pytest.raises(h.UnsupportedContentType, match="'image/png' is not supported") as info:
        h.transform_fn(classifier, b"\x89PNG", "image/png", None)
    assert info.value.status_code == 415


def test_unsupported_accept_is_406(classifier: Any) -> None:
    with pytest.raises(h.UnsupportedAccept, match="'application/xml' is not supported") as info:
        h.transform_fn(classifier, "5.1,3.5,1.4,0.2", "text/csv", "application/xml")
    assert info.value.status_code == 406


def test_missing_csv_values_are_nan(classifier: Any) -> None:
    rows = h.parse_csv("1,,3,4\n5,6, ,8\n", classifier.inputs[0])
    assert rows.dtype == np.float32 and rows.shape == (2, 4)
    assert np.isnan(rows[0, 1]) and np.isnan(rows[1, 2])


# ---------------------------------------------------------------------------------------------
# The toolkit's contract


def test_module_serves_through_transform_fn_only() -> None:
    # homeport_toolkit refuses a module that defines transform_fn and any of the trio.
    assert callable(h.model_fn) and callable(h.transform_fn)
    assert not [name for name in ("input_fn", "predict_fn", "output_fn") if hasattr(h, name)]


def test_predict_serves_the_toolkits_default_predict_fn(classifier: Any, forest: Any) -> None:
    assert classifier.predict(X[:5]).tolist() == forest.predict(X[:5]).tolist()
    assert classifier.predict(X[0]).tolist() == forest.predict(X[:1]).tolist()  # one row
