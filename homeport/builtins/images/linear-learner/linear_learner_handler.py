"""Serving for Homeport's Linear Learner image: ``homeport_toolkit.serving`` calls ``model_fn`` once per
worker and ``transform_fn`` per request.

Requests (``Content-Type``), as SageMaker's Linear Learner takes them:

* ``text/csv``: one record per line, features only (no label), no header;
* ``application/json``: ``{"instances": [{"features": [...]}, ...]}``, also
  ``{"instances": [{"data": {"features": {"values": [...]}}}]}`` and the sparse
  ``{"data": {"features": {"keys": [...], "values": [...], "shape": [d]}}}``;
* ``application/jsonlines``: one such instance per line;
* ``application/x-recordio-protobuf``: ``aialgs.data.Record`` records (the SageMaker SDK's
  ``LinearLearnerPredictor`` default).

Responses (``Accept``; default ``application/json``), as in AWS's "Linear learner response formats":

* ``application/json``: ``{"predictions": [{"score": 0.93, "predicted_label": 1}, ...]}``: binary
  scores are P(label = 1), multiclass scores the class probabilities, regressors have a score only;
* ``application/jsonlines``: one of those objects per line;
* ``application/x-recordio-protobuf``: Records whose ``label`` map holds ``score`` and
  ``predicted_label`` float32 tensors;
* ``text/csv`` (a Homeport addition: SageMaker's Linear Learner has no CSV output): one line per
  record, ``predicted_label,score`` (binary), ``predicted_label,p0,...,pk-1`` (multiclass) or
  ``score`` (regressor).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from linear_learner import MODEL_FILE, LinearModel, encode_record, records_to_arrays, write_recordio

JSON = "application/json"
JSONLINES = "application/jsonlines"
CSV = "text/csv"
RECORDIO = "application/x-recordio-protobuf"
_ALIASES = {
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-recordio": RECORDIO,
    "text/x-csv": CSV,
}
_OUTPUTS = (JSON, JSONLINES, CSV, RECORDIO)


try:  # in the image: the toolkit answers its InferenceError with the error's status code
    from homeport_toolkit.errors import InferenceError as _StatusError
except ImportError:  # pragma: no cover - depends on what is on sys.path

    class _StatusError(Exception):  # type: ignore[no-redef]
        status_code = 500

        def __init__(self, message: str, status_code: int | None = None) -> None:
            super().__init__(message)
            self.message = message
            if status_code is not None:
                self.status_code = status_code


class InferenceError(_StatusError, ValueError):
    """A request this model cannot answer, with the HTTP status it calls for (``status_code``)."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)


class UnsupportedContentType(InferenceError):
    status_code = 415


class NotAcceptable(InferenceError):
    status_code = 406


def model_fn(model_dir: str) -> LinearModel:
    root = Path(model_dir)
    path = root / MODEL_FILE
    if not path.is_file():
        found = sorted(root.rglob(MODEL_FILE))
        if not found:
            raise FileNotFoundError(f"No {MODEL_FILE} in {model_dir}: is this a Linear Learner model?")
        path = found[0]
    return LinearModel.load(path)


def transform_fn(
    model: LinearModel, data: Any, content_type: str | None, accept: str | None
) -> tuple[bytes, str]:
    output = negotiate(accept)
    features = parse_request(data, content_type, model.feature_dim)
    scores, labels = model.predict(features)
    return render(model, scores, labels, output), output


def _media(content_type: str | None) -> str:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(media, media)


def negotiate(accept: str | None) -> str:
    """The response type for an Accept header: the first one supported; ``*/*`` or none is JSON."""
    if not accept or not accept.strip():
        return JSON
    for part in accept.split(","):
        media = _media(part)
        if media in ("*/*", "application/*", ""):
            return JSON
        if media == "text/*":
            return CSV
        if media in _OUTPUTS:
            return media
    raise NotAcceptable(f"Accept type {accept!r} is not supported; supported: {', '.join(_OUTPUTS)}")


def _text(data: Any) -> str:
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise InferenceError("The request body is not UTF-8 text") from None
    return str(data)


def parse_request(data: Any, content_type: str | None, dim: int) -> np.ndarray:
    """The request's records as a (n, dim) float64 array."""
    media = _media(content_type) or CSV
    if media == CSV:
        rows = parse_csv(_text(data), dim)
    elif media == JSON:
        rows = _rows(_loads(_text(data)), dim)
    elif media == JSONLINES:
        lines = [line for line in _text(data).splitlines() if line.strip()]
        rows = np.vstack([_instance(_loads(line), dim) for line in lines]) if lines else np.zeros((0, dim))
    elif media == RECORDIO:
        payload = data.encode() if isinstance(data, str) else bytes(data)
        try:
            rows = records_to_arrays(payload, dim, with_labels=False)[0]
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise InferenceError(f"Unable to read the request as {RECORDIO}: {exc}") from None
    else:
        raise UnsupportedContentType(
            f"Content type {content_type!r} is not supported; "
            f"supported: {CSV}, {JSON}, {JSONLINES}, {RECORDIO}"
        )
    if rows.shape[0] == 0:
        raise InferenceError("The request has no records")
    if rows.shape[1] != dim:
        raise InferenceError(f"Each record must have {dim} features (feature_dim); got {rows.shape[1]}")
    if not np.all(np.isfinite(rows)):
        raise InferenceError("The request has a missing or non-finite feature value")
    return rows


def parse_csv(text: str, dim: int) -> np.ndarray:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return np.zeros((0, dim))
    for number, line in enumerate(lines, start=1):
        if line.count(",") != dim - 1:
            raise InferenceError(
                f"CSV line {number} has {line.count(',') + 1} values; each record must have {dim} features "
                "(feature_dim) and no label"
            )
    try:
        values = np.array(
            lines[0].split(",") if len(lines) == 1 else ",".join(lines).split(","), dtype=np.float64
        )
    except ValueError as exc:
        raise InferenceError(f"Unable to parse the CSV request: {exc}") from None
    return values.reshape(len(lines), dim)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InferenceError(f"Unable to parse the JSON request: {exc}") from None


def _rows(payload: Any, dim: int) -> np.ndarray:
    if isinstance(payload, dict):
        if "instances" in payload:
            instances = payload["instances"]
        elif "features" in payload or "data" in payload:
            instances = [payload]
        else:
            raise InferenceError('A JSON request is {"instances": [{"features": [...]}, ...]}')
    elif isinstance(payload, list):
        instances = [payload] if payload and not isinstance(payload[0], list | dict) else payload
    else:
        raise InferenceError('A JSON request is {"instances": [{"features": [...]}, ...]}')
    if not isinstance(instances, list):
        raise InferenceError('"instances" must be a list')
    if not instances:
        return np.zeros((0, dim))
    return np.vstack([_instance(item, dim) for item in instances])


def _vector(values: Any) -> np.ndarray:
    try:
        vector = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InferenceError(f"Features must be numbers; got {str(values)[:80]}") from None
    if vector.ndim != 1:
        raise InferenceError("Each instance's features must be a flat list of numbers")
    return vector


def _instance(item: Any, dim: int) -> np.ndarray:
    features = item
    if isinstance(item, dict):
        if "features" in item:
            features = item["features"]
        elif isinstance(item.get("data"), dict) and "features" in item["data"]:
            features = item["data"]["features"]
        else:
            raise InferenceError(
                'Each instance needs "features": [...] (or "data": {"features": {"values": [...]}})'
            )
    if isinstance(features, dict):
        values = _vector(features.get("values", []))
        keys = features.get("keys") or []
        if not keys:
            return values
        positions = _vector(keys).astype(np.int64)
        if len(positions) != len(values):
            raise InferenceError("A sparse instance needs as many keys as values")
        shape = _vector(features.get("shape") or [dim])
        size = int(shape[0]) if shape.size else dim
        if positions.size and (positions.min() < 0 or positions.max() >= size):
            raise InferenceError(f"A sparse key is outside the vector's shape [{size}]")
        dense = np.zeros(size)
        dense[positions] = values
        return dense
    return _vector(features)


def _records(scores: np.ndarray, labels: np.ndarray | None) -> list[dict[str, Any]]:
    values = scores.astype(np.float32).tolist()  # the algorithm answers float32 scores
    if labels is None:
        return [{"score": score} for score in values]
    return [
        {"score": score, "predicted_label": label}
        for score, label in zip(values, labels.tolist(), strict=True)
    ]


def render(model: LinearModel, scores: np.ndarray, labels: np.ndarray | None, output: str) -> bytes:
    if output == JSON:
        return json.dumps({"predictions": _records(scores, labels)}).encode()
    if output == JSONLINES:
        return "\n".join(json.dumps(record) for record in _records(scores, labels)).encode()
    if output == CSV:
        values = scores.astype(np.float32).tolist()
        if labels is None:
            return "\n".join(repr(v) for v in values).encode()
        if model.predictor_type == "multiclass_classifier":
            return "\n".join(
                ",".join([str(label), *map(repr, row)])
                for label, row in zip(labels.tolist(), values, strict=True)
            ).encode()
        return "\n".join(f"{label},{v!r}" for label, v in zip(labels.tolist(), values, strict=True)).encode()
    records = []
    for i in range(scores.shape[0]):
        label = {"score": np.atleast_1d(scores[i])}
        if labels is not None:
            label["predicted_label"] = np.array([labels[i]])
        records.append(encode_record(None, label))
    return write_recordio(records)
