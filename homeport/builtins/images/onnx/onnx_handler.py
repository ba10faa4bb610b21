"""Serve any ``model.onnx`` with onnxruntime: request decoding, one inference session, response encoding.

This module needs only numpy and onnxruntime: the built-in ``onnx`` image loads it through
``homeport_toolkit`` (``model_fn`` once per worker, ``transform_fn`` per request), and
``homeport export --format onnx`` copies it next to the standalone ``server.py`` it writes, where
no Homeport code is installed. ``OnnxModel.predict`` serves the toolkit's default ``predict_fn``
when a user's inference script brings its own ``input_fn``/``output_fn``.

Requests (``Content-Type``; parameters such as ``; charset=utf-8`` are ignored):

* ``text/csv``: one row per line, numbers only, no header; an empty field is a missing value (NaN).
* ``application/json``: ``{"instances": [[...], ...]}``, a bare list of rows ``[[...], ...]``, a
  single row ``[...]``, SageMaker's ``{"instances": [{"features": [...]}, ...]}``, or
  ``{"inputs": ...}`` (for a model with several inputs: ``{"inputs": {"name": [...], ...}}``).
* ``application/x-npy``: an array saved with ``numpy.save`` (no pickles).
* missing or ``application/octet-stream``: sniffed (``.npy`` magic, JSON, else CSV).

A one-dimensional input is one row (one column when the model takes a single feature).

Responses (``Accept``; missing, ``*/*`` or ``application/*``: JSON; ``text/*``: CSV):

* ``application/json``: ``{"predictions": [...]}``, one entry per row:

  - a classifier (the model has a label output and a probability output, as scikit-learn,
    XGBoost and LightGBM converters write): ``{"predicted_label": 1, "score": [0.1, 0.9]}``;
    ``score[i]`` is the probability of the i-th class in the model's class order (scikit-learn's
    ``classes_``), a number when the model gives one probability per row;
  - a model with one output: the row's value (a number when it has one value, e.g. a regressor,
    else a list);
  - any other model: ``{"<output name>": value, ...}``.

  NaN and infinities are written as ``null``.
* ``text/csv``: one line per row: a classifier's ``label,score_0,score_1,...``; otherwise the
  row's values of every output, in output order.

Errors are :class:`OnnxHandlerError` subclasses (ValueErrors, and the toolkit's
``InferenceError`` where it is installed) carrying the HTTP ``status_code`` for the response:
400 bad input, 406 unsupported Accept, 415 unsupported Content-Type.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

MODEL_FILE = "model.onnx"
CSV = "text/csv"
JSON = "application/json"
NPY = "application/x-npy"
_OCTET_STREAM = "application/octet-stream"
_NPY_MAGIC = b"\x93NUMPY"

_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}
_LABEL_TYPES = {"tensor(int64)", "tensor(int32)", "tensor(string)", "tensor(bool)"}
_PROBABILITY_TYPES = {"tensor(float)", "tensor(double)"}


try:  # inside the image, the toolkit answers its InferenceError with the error's status_code
    from homeport_toolkit.errors import InferenceError as _Base
except ImportError:  # the exported standalone server, and the tests

    class _Base(Exception):  # type: ignore[no-redef]
        status_code = 500

        def __init__(self, message: str, status_code: int | None = None) -> None:
            super().__init__(message)
            self.message = message
            if status_code is not None:
                self.status_code = status_code


class OnnxHandlerError(_Base, ValueError):
    """A request the model cannot answer; ``status_code`` is the HTTP status to reply with."""

    status_code = 400


class BadInput(OnnxHandlerError):
    status_code = 400


class UnsupportedAccept(OnnxHandlerError):
    status_code = 406


class UnsupportedContentType(OnnxHandlerError):
    status_code = 415


@dataclass(frozen=True)
class ModelInput:
    name: str
    dtype: Any  # a numpy scalar type
    rank: int | None  # None: the model does not say
    features: int | None  # the last dimension when the model fixes it


@dataclass(frozen=True)
class Prediction:
    """What the session returned, in the model's output order."""

    names: list[str]
    values: list[Any]  # numpy arrays, or lists of dicts (ZipMap) for classifier probabilities


class OnnxModel:
    """One onnxruntime session and what the codecs need to know about its inputs and outputs."""

    def __init__(self, path: str, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        self.inputs = [_describe_input(arg) for arg in self.session.get_inputs()]
        outputs = self.session.get_outputs()
        self.output_names = [arg.name for arg in outputs]
        # ZipMap (a list of {class: probability} dicts) loses the dtype: remember it for encoding.
        self.map_dtypes = [np.float64 if "tensor(double)" in arg.type else np.float32 for arg in outputs]
        self.label_index, self.score_index = _classifier_outputs(outputs)

    @property
    def is_classifier(self) -> bool:
        return self.label_index is not None

    def run(self, feed: Mapping[str, np.ndarray]) -> Prediction:
        if len(self.inputs) != len(feed):
            names = ", ".join(i.name for i in self.inputs)
            example = '{"inputs": {"<name>": [...], ...}}'
            raise BadInput(f"the model takes {len(self.inputs)} inputs ({names}): send JSON {example}")
        try:
            values = self.session.run(self.output_names, dict(feed))
        except Exception as exc:  # noqa: BLE001 - onnxruntime's InvalidArgument & co. share no base
            if type(exc).__name__ in ("InvalidArgument", "Fail", "NotImplemented"):
                raise BadInput(f"the model rejected the input: {exc}") from exc
            raise
        return Prediction(list(self.output_names), list(values))

    def predict(self, data: Any) -> Any:
        """The first output (a classifier's labels) for an array of rows: what the toolkit's default
        ``predict_fn`` calls when a user's inference script brings its own ``input_fn``/``output_fn``."""
        if isinstance(data, Mapping):
            return self.run(data).values[0]
        spec = self.inputs[0]
        return self.run({spec.name: _shape(_as_dtype(np.asarray(data), spec), spec)}).values[0]


def _describe_input(arg: Any) -> ModelInput:
    dtype = _DTYPES.get(arg.type)
    if dtype is None:
        raise ValueError(f"model input {arg.name!r} has type {arg.type}, which this server cannot feed")
    shape = arg.shape if isinstance(arg.shape, list) else None
    features = shape[-1] if shape and isinstance(shape[-1], int) and shape[-1] > 0 else None
    return ModelInput(arg.name, dtype, len(shape) if shape is not None else None, features)


def _classifier_outputs(outputs: Sequence[Any]) -> tuple[int | None, int | None]:
    """(label index, probability index) when the outputs are a classifier's, else (None, None)."""
    if len(outputs) != 2:
        return None, None
    label = [i for i, o in enumerate(outputs) if o.type in _LABEL_TYPES]
    score = [
        i
        for i, o in enumerate(outputs)
        if o.type.startswith("seq(map(") or (o.type in _PROBABILITY_TYPES and i not in label)
    ]
    if len(label) == 1 and len(score) == 1 and label != score:
        return label[0], score[0]
    return None, None


# ---------------------------------------------------------------------------------------------
# The SageMaker handler interface: model_fn and transform_fn. (The toolkit refuses a module that
# defines transform_fn together with input_fn/predict_fn/output_fn, hence decode/encode below.)


def load_model(model_dir: str, threads: int = 1) -> OnnxModel:
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {MODEL_FILE} in {model_dir}: the ONNX server serves {path}")
    return OnnxModel(path, threads)


def model_fn(model_dir: str) -> OnnxModel:
    # One session per worker; the toolkit runs one worker per CPU, so each uses one thread.
    return load_model(model_dir, threads=1)


def decode(data: str | bytes, content_type: str | None, model: OnnxModel) -> dict[str, np.ndarray]:
    """The session's feed for a request body."""
    media = _media_type(content_type)
    if media in ("", _OCTET_STREAM):
        media = _sniff(data)
    if media == CSV:
        return {model.inputs[0].name: _shape(parse_csv(_text(data), model.inputs[0]), model.inputs[0])}
    if media == JSON:
        return parse_json(_text(data), model)
    if media == NPY:
        return {model.inputs[0].name: _shape(_as_dtype(parse_npy(data), model.inputs[0]), model.inputs[0])}
    raise UnsupportedContentType(
        f"Content-Type {content_type!r} is not supported: use {CSV}, {JSON} or {NPY}"
    )


def encode(prediction: Prediction, accept: str | None, model: OnnxModel) -> tuple[bytes, str]:
    media = choose_accept(accept)
    if media == CSV:
        return encode_csv(prediction, model).encode(), CSV
    return encode_json(prediction, model).encode(), JSON


def transform_fn(
    model: OnnxModel, data: str | bytes, content_type: str | None, accept: str | None
) -> tuple[bytes, str]:
    return encode(model.run(decode(data, content_type, model)), accept, model)


# ---------------------------------------------------------------------------------------------
# Decoding


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _text(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"the request body is not UTF-8 text: {exc}") from exc


def _sniff(data: str | bytes) -> str:
    head = data[:8].encode() if isinstance(data, str) else bytes(data[:8])
    if head.startswith(_NPY_MAGIC):
        return NPY
    return JSON if head.lstrip()[:1] in (b"[", b"{") else CSV


def parse_csv(text: str, spec: ModelInput) -> np.ndarray:
    """CSV rows as a 2-D array; a single row costs one split and one numpy conversion."""
    text = text.strip()
    if not text:
        raise BadInput("the CSV body is empty")
    if "\n" not in text and "\r" not in text:
        fields = text.split(",")
        rows, columns = 1, len(fields)
    else:
        lines = [line for line in text.splitlines() if line.strip()]
        rows, columns = len(lines), lines[0].count(",") + 1
        fields = ",".join(lines).split(",")
        if len(fields) != rows * columns:
            for number, line in enumerate(lines, 1):
                if line.count(",") + 1 != columns:
                    raise BadInput(
                        f"CSV line {number} has {line.count(',') + 1} values; the first line has {columns}"
                    )
    if spec.dtype is np.object_:
        return np.array([f.strip() for f in fields], dtype=object).reshape(rows, columns)
    try:
        numbers = np.array(fields, dtype=_parse_dtype(spec))
    except ValueError:
        numbers = np.array([_csv_number(f) for f in fields], dtype=np.float64)
    return _as_dtype(numbers.reshape(rows, columns), spec)


def _parse_dtype(spec: ModelInput) -> Any:
    # Integers go through float64 so that "1.0" is accepted for an int64 feature.
    return spec.dtype if spec.dtype in (np.float32, np.float64) else np.float64


def _csv_number(field: str) -> float:
    if not field.strip():
        return float("nan")  # a missing value, as XGBoost and SageMaker's CSV have it
    try:
        return float(field)
    except ValueError:
        raise BadInput(f"CSV value {field.strip()[:40]!r} is not a number") from None


def parse_json(text: str, model: OnnxModel) -> dict[str, np.ndarray]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"the JSON body is not valid JSON: {exc}") from exc
    if isinstance(doc, dict):
        if "instances" in doc:
            doc = doc["instances"]
        elif "inputs" in doc:
            doc = doc["inputs"]
            if isinstance(doc, dict):
                return _named_inputs(doc, model)
        elif "features" in doc:
            doc = [doc["features"]]
        else:
            raise BadInput('JSON must be {"instances": [[...], ...]}, {"inputs": ...} or a list of rows')
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        try:
            doc = [row["features"] for row in doc]
        except (KeyError, TypeError):
            raise BadInput('JSON instances that are objects need a "features" list each') from None
    spec = model.inputs[0]
    return {spec.name: _shape(_array(doc, spec, "instances"), spec)}


def _named_inputs(doc: dict[str, Any], model: OnnxModel) -> dict[str, np.ndarray]:
    specs = {spec.name: spec for spec in model.inputs}
    unknown = sorted(set(doc) - set(specs))
    if unknown:
        raise BadInput(f"unknown model inputs {unknown}; the model takes {sorted(specs)}")
    return {name: _shape(_array(value, specs[name], name), specs[name]) for name, value in doc.items()}


def _array(value: Any, spec: ModelInput, what: str) -> np.ndarray:
    try:
        if spec.dtype is np.object_:
            return np.array(value, dtype=object)
        array = np.array(value, dtype=_parse_dtype(spec))
    except (ValueError, TypeError) as exc:
        raise BadInput(f"JSON {what} must be a list of rows of numbers of equal length: {exc}") from None
    return _as_dtype(array, spec)


def parse_npy(data: str | bytes) -> np.ndarray:
    raw = data.encode("latin-1") if isinstance(data, str) else bytes(data)
    try:
        array: np.ndarray = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadInput(f"the body is not a .npy array (numpy.save, no pickles): {exc}") from exc
    return array


def _as_dtype(array: np.ndarray, spec: ModelInput) -> np.ndarray:
    if array.dtype == spec.dtype:
        return array
    try:
        return array.astype(spec.dtype)
    except (ValueError, TypeError) as exc:
        dtype = np.dtype(spec.dtype).name
        raise BadInput(f"input {spec.name!r} cannot be converted to {dtype}: {exc}") from exc


def _shape(array: np.ndarray, spec: ModelInput) -> np.ndarray:
    """One row (or one column for a one-feature model) when the model wants one more dimension."""
    if array.ndim == 0 or array.size == 0:
        raise BadInput(f"input {spec.name!r} holds no rows")
    if spec.rank is not None and array.ndim == spec.rank - 1:
        array = array.reshape(-1, 1) if spec.features == 1 and spec.rank == 2 else array[np.newaxis]
    if spec.rank == 2 and array.ndim == 2 and spec.features is not None and array.shape[1] != spec.features:
        raise BadInput(f"the model takes {spec.features} features per row; got {array.shape[1]}")
    return array


# ---------------------------------------------------------------------------------------------
# Encoding


def choose_accept(accept: str | None) -> str:
    """The response type for an Accept header (first supported entry wins)."""
    if not accept or not accept.strip():
        return JSON
    for entry in accept.split(","):
        media = _media_type(entry)
        if media in (JSON, "*/*", "application/*", "application/jsonlines"):
            return JSON
        if media in (CSV, "text/*"):
            return CSV
    raise UnsupportedAccept(f"Accept {accept!r} is not supported: use {JSON} or {CSV}")


def _rows(values: Any, rows: int, map_dtype: Any = np.float32) -> np.ndarray:
    """An output with rows first: [rows, ...]; ZipMap's list of dicts becomes class-ordered columns."""
    if isinstance(values, list) and values and isinstance(values[0], dict):
        return np.array([list(d.values()) for d in values], dtype=map_dtype)
    array = np.asarray(values)
    if array.ndim == 0 or array.shape[0] != rows:
        return array.reshape(1, -1) if rows == 1 else array.reshape(rows, -1)
    return array if array.ndim > 1 else array.reshape(rows, 1)


def _json_cells(array: np.ndarray) -> np.ndarray:
    """Each element as JSON text: floats in their shortest form (no float32 noise), NaN as null."""
    kind = array.dtype.kind
    if kind == "f":
        cells = array.astype(str)
        finite = np.isfinite(array)
        if not finite.all():
            cells[~finite] = "null"
        return cells
    if kind in "iu":
        return array.astype(str)
    if kind == "b":
        return np.where(array, "true", "false")
    return np.array([json.dumps(v if isinstance(v, str) else _plain(v)) for v in array.flat]).reshape(
        array.shape
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)


def _json_rows(array: np.ndarray) -> list[str]:
    """One JSON value per row: a scalar for one value, a list for several, nested lists beyond 2-D."""
    if array.ndim > 2:
        return [json.dumps(row) for row in array.tolist()]
    cells = _json_cells(array)
    if cells.shape[1] == 1:
        return cells[:, 0].tolist()
    return ["[" + ",".join(row) + "]" for row in cells.tolist()]


def _output(prediction: Prediction, model: OnnxModel, index: int, rows: int) -> np.ndarray:
    return _rows(prediction.values[index], rows, model.map_dtypes[index])


def _count_rows(prediction: Prediction, model: OnnxModel) -> int:
    first = prediction.values[model.label_index if model.label_index is not None else 0]
    if isinstance(first, list):
        return len(first)
    shape = np.shape(first)
    return int(shape[0]) if shape else 1


def encode_json(prediction: Prediction, model: OnnxModel) -> str:
    rows = _count_rows(prediction, model)
    if model.label_index is not None and model.score_index is not None:
        labels = _json_rows(_rows(prediction.values[model.label_index], rows))
        scores = _json_rows(_output(prediction, model, model.score_index, rows))
        pairs = zip(labels, scores, strict=True)
        items = [f'{{"predicted_label":{label},"score":{score}}}' for label, score in pairs]
    elif len(prediction.values) == 1:
        items = _json_rows(_output(prediction, model, 0, rows))
    else:
        columns = [_json_rows(_output(prediction, model, i, rows)) for i in range(len(prediction.values))]
        keys = [json.dumps(name) for name in prediction.names]
        items = [
            "{" + ",".join(f"{key}:{value}" for key, value in zip(keys, row, strict=True)) + "}"
            for row in zip(*columns, strict=True)
        ]
    return '{"predictions":[' + ",".join(items) + "]}"


def _csv_cells(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind in "fiu":
        return array.astype(str)
    if array.dtype.kind == "b":
        return np.where(array, "1", "0")
    return np.array([_csv_quote(str(v)) for v in array.flat]).reshape(array.shape)


def _csv_quote(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def encode_csv(prediction: Prediction, model: OnnxModel) -> str:
    rows = _count_rows(prediction, model)
    order = list(range(len(prediction.values)))
    if model.label_index is not None and model.score_index is not None:
        order = [model.label_index, model.score_index]
    cells = np.concatenate(
        [_csv_cells(_output(prediction, model, i, rows).reshape(rows, -1)) for i in order], axis=1
    )
    return "\n".join(",".join(row) for row in cells.tolist()) + "\n"
