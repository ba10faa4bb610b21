"""Serving defaults of the XGBoost image: SageMaker's XGBoost algorithm endpoints (1.5-1/1.7-1).

The toolkit calls :func:`model_fn` once per worker and :func:`transform_fn` per request.

Requests (``Content-Type``, parameters ignored; none: LIBSVM when the body reads as LIBSVM, else CSV):

* ``text/csv`` — rows of features, no label; empty fields are missing values. One row takes a
  fast path (``str.split`` + ``float``, then ``Booster.inplace_predict``: no DMatrix);
* ``text/libsvm`` / ``text/x-libsvm`` — ``[label] index:value ...`` (tokens without ``:`` skipped);
* ``application/json`` — SageMaker's common format: ``{"instances": [{"features": [...]}, ...]}``,
  ``{"instances": [[...], ...]}``, ``{"features": [...]}``, ``{"data": {"features": {"values": [...]}}}``
  (sparse ``{"keys", "values", "shape"}`` too), or a bare row / list of rows;
* ``application/jsonlines`` — one such instance per line;
* ``application/x-parquet`` — every column is a feature.

Responses (``Accept``; ``*/*`` or none: ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, else ``text/csv``):

* ``text/csv`` — the container's: predictions comma-joined (``str`` of each float), or one per line
  with a trailing newline under ``SAGEMAKER_BATCH``; a multi-output prediction (``multi:softprob``)
  is one line per row;
* ``application/json`` — ``{"predictions": [{"score": 0.4}, ...]}`` (``"score": [p0, p1, p2]`` for
  ``multi:softprob``);
* ``application/jsonlines`` — ``{"score": 0.4}`` per line.

With ``SAGEMAKER_INFERENCE_OUTPUT`` (e.g. ``predicted_label,probabilities``) the response carries
those keys instead, as the container's selectable inference output does.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from xgboost_algorithm import MODEL_NAME, ONNX_NAME, booster_objective, parse_libsvm

try:  # the toolkit's error type gives the HTTP status; tests run without the toolkit
    from homeport_toolkit.errors import InferenceError as _Base
except ImportError:  # pragma: no cover - exercised in the image

    class _Base(Exception):  # type: ignore[no-redef]
        status_code = 500

        def __init__(self, message: str, status_code: int | None = None) -> None:
            super().__init__(message)
            self.message = message
            if status_code is not None:
                self.status_code = status_code


class InferenceError(_Base):
    """An invocation error answered with ``status_code`` (the container's status for each case)."""


CSV = "text/csv"
LIBSVM = "text/libsvm"
JSON = "application/json"
JSONLINES = "application/jsonlines"
PARQUET = "application/x-parquet"
_CONTENT_TYPES = {
    "text/csv": CSV, "csv": CSV,
    "text/libsvm": LIBSVM, "text/x-libsvm": LIBSVM, "libsvm": LIBSVM,
    "application/json": JSON, "json": JSON,
    "application/jsonlines": JSONLINES, "application/jsonl": JSONLINES, "application/x-jsonlines": JSONLINES,
    "application/json-lines": JSONLINES, "jsonlines": JSONLINES,
    "application/x-parquet": PARQUET, "parquet": PARQUET,
}
_ACCEPTS = {
    "text/csv": CSV, "csv": CSV, "application/json": JSON, "json": JSON,
    "application/jsonlines": JSONLINES, "application/jsonl": JSONLINES, "application/x-jsonlines": JSONLINES,
    "jsonlines": JSONLINES,
}

# Selectable inference output (SAGEMAKER_INFERENCE_OUTPUT): the keys each objective can answer.
PREDICTED_LABEL, LABELS, PROBABILITY = "predicted_label", "labels", "probability"
PROBABILITIES, RAW_SCORE, RAW_SCORES = "probabilities", "raw_score", "raw_scores"
PREDICTED_SCORE = "predicted_score"
VALID_OBJECTIVES = {
    "reg:squarederror": [PREDICTED_SCORE],
    "reg:logistic": [PREDICTED_SCORE],
    "reg:gamma": [PREDICTED_SCORE],
    "reg:tweedie": [PREDICTED_SCORE],
    "binary:logistic": [PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES],
    "binary:logitraw": [PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES],
    "binary:hinge": [PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES],
    "multi:softmax": [PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES],
    "multi:softprob": [PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES],
}


@dataclass
class XGBoostModel:
    """A loaded booster and what serving needs to know about it."""

    booster: Any
    objective: str = "reg:squarederror"
    num_class: int = 0
    num_features: int = 0
    extra: list[Any] = field(default_factory=list)  # more boosters: predictions are averaged

    def predict(self, features: Any) -> np.ndarray:
        preds = _predict_one(self.booster, features)
        if self.extra:
            preds = np.mean([preds] + [_predict_one(b, features) for b in self.extra], axis=0)
        return preds


def _predict_one(booster: Any, features: Any) -> np.ndarray:
    if isinstance(booster, xgb.Booster):
        try:
            return booster.inplace_predict(features, validate_features=False)
        except (xgb.core.XGBoostError, TypeError, ValueError):
            return booster.predict(xgb.DMatrix(features), validate_features=False)
    return np.asarray(booster.predict(features))  # e.g. an XGBModel from a script's model_fn


def _load_file(path: Path) -> Any:
    raw = path.read_bytes()
    if raw[:1] == b"\x80":  # a pickle (the 0.90-x containers pickled the booster)
        return pickle.loads(raw)  # noqa: S301 - the container loads pickled models too
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))  # JSON or UBJSON, told apart by their content
    return booster


def model_fn(model_dir: str) -> XGBoostModel:
    """``xgboost-model`` (or the other model files of the folder: their predictions are averaged)."""
    folder = Path(model_dir)
    preferred = folder / MODEL_NAME
    if preferred.is_file():
        paths = [preferred]
    else:
        paths = sorted(
            p for p in folder.iterdir()
            if p.is_file() and p.name != ONNX_NAME and not p.name.startswith(".") and p.suffix != ".onnx"
        )
    if not paths:
        raise InferenceError(f"Unable to load model: no model file in {model_dir}", 500)
    boosters = []
    for path in paths:
        try:
            booster = _load_file(path)
        except Exception as exc:  # noqa: BLE001 - reported as the container does
            message = f"Unable to load model: Model at {path} cannot be loaded:\n{exc}"
            raise InferenceError(message, 500) from exc
        if isinstance(booster, xgb.Booster):
            booster.set_param({"nthread": 1})  # a worker per CPU, as the container serves
        boosters.append(booster)
    model = XGBoostModel(boosters[0], extra=boosters[1:])
    if isinstance(boosters[0], xgb.Booster):
        model.objective, model.num_class = booster_objective(boosters[0])
        model.num_features = boosters[0].num_features()
    return model


def _as_model(model: Any) -> XGBoostModel:
    if isinstance(model, XGBoostModel):
        return model
    if isinstance(model, tuple) and model and isinstance(model[0], xgb.Booster):  # (booster, format)
        model = model[0]
    if isinstance(model, xgb.Booster):
        objective, num_class = booster_objective(model)
        return XGBoostModel(model, objective, num_class, model.num_features())
    return XGBoostModel(model)


# -- requests -----------------------------------------------------------------------------------------


def _media(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _text(data: str | bytes) -> str:
    return data if isinstance(data, str) else bytes(data).decode("utf-8")


def _float(token: str) -> float:
    token = token.strip()
    return float(token) if token else float("nan")


def parse_csv(text: str) -> np.ndarray:
    """CSV rows → a 2-D float32 array; one row is the cheap case (``str.split`` + ``float``)."""
    text = text.strip()
    if not text:
        raise ValueError("no data")
    first_end = text.find("\n")
    first = text if first_end < 0 else text[:first_end]
    delimiter = "," if "," in first or "\t" not in first else "\t"
    if first_end < 0:
        try:
            row = [float(x) for x in first.split(delimiter)]
        except ValueError:
            row = [_float(x) for x in first.split(delimiter)]
        return np.array([row], dtype=np.float32)
    rows = [line.split(delimiter) for line in text.splitlines() if line.strip()]
    try:
        return np.array(rows, dtype=np.float32)
    except ValueError:
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise ValueError(f"rows have different numbers of fields: {sorted(widths)}") from None
        return np.array([[_float(x) for x in r] for r in rows], dtype=np.float32)


def _instance_row(instance: Any) -> Any:
    """One instance of SageMaker's JSON format → a list of floats (NaN for null / sparse gaps)."""
    if isinstance(instance, dict):
        if "features" in instance:
            instance = instance["features"]
        elif "data" in instance:
            instance = instance["data"]
            if isinstance(instance, dict) and "features" in instance:
                instance = instance["features"]
        else:
            raise ValueError(f"an instance needs 'features' or 'data', got keys {sorted(instance)}")
        if isinstance(instance, dict):  # {"values": [...]} or sparse {"keys", "values", "shape"}
            values = instance.get("values", [])
            if "keys" in instance:
                width = int((instance.get("shape") or [max(instance["keys"], default=-1) + 1])[0])
                row = [float("nan")] * width
                for key, value in zip(instance["keys"], values, strict=True):
                    row[int(key)] = value
                return row
            return values
    if isinstance(instance, (int, float)) or instance is None:
        return [instance]
    return instance


def _rows_to_array(rows: list[Any]) -> np.ndarray:
    cleaned = [[float("nan") if v is None else v for v in row] for row in rows]
    return np.array(cleaned, dtype=np.float32).reshape(len(cleaned), -1)


def parse_json(text: str) -> np.ndarray:
    payload = json.loads(text)
    if isinstance(payload, dict):
        if "instances" in payload:
            rows = [_instance_row(i) for i in payload["instances"]]
        else:
            rows = [_instance_row(payload)]
    elif isinstance(payload, list):
        if payload and all(isinstance(v, (int, float)) or v is None for v in payload):
            rows = [payload]  # one row
        else:
            rows = [_instance_row(i) for i in payload]
    else:
        raise ValueError("the JSON body is neither an object nor a list")
    return _rows_to_array(rows)


def parse_jsonlines(text: str) -> np.ndarray:
    rows = [_instance_row(json.loads(line)) for line in text.splitlines() if line.strip()]
    return _rows_to_array(rows)


def parse_parquet(data: bytes) -> np.ndarray:
    import io

    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    out = np.empty((table.num_rows, table.num_columns), dtype=np.float32)
    for j in range(table.num_columns):
        out[:, j] = table.column(j).to_numpy()
    return out


def _looks_like_libsvm(text: str) -> bool:
    first = text.lstrip().split("\n", 1)[0]
    tokens = first.split()
    return bool(tokens) and "," not in first and any(":" in t for t in tokens)


def parse_request(data: str | bytes, content_type: str | None) -> Any:
    """The request body as a 2-D float32 array (or a CSR matrix for LIBSVM)."""
    if data is None or len(data) == 0:
        raise InferenceError("", 204)
    media = _media(content_type)
    kind = _CONTENT_TYPES.get(media)
    if not media:
        kind = LIBSVM if _looks_like_libsvm(_text(data)) else CSV
    if kind is None:
        raise InferenceError(
            f"Content-type {content_type} not supported. Supported content-type is text/csv, text/libsvm, "
            "application/json, application/jsonlines, application/x-parquet", 415
        )
    try:
        if kind == CSV:
            return parse_csv(_text(data))
        if kind == LIBSVM:
            return parse_libsvm(_text(data), with_label=False)[0]
        if kind == JSON:
            return parse_json(_text(data))
        if kind == JSONLINES:
            return parse_jsonlines(_text(data))
        return parse_parquet(data if isinstance(data, bytes) else data.encode("utf-8"))
    except InferenceError:
        raise
    except Exception as exc:  # noqa: BLE001 - the container answers 415 for a body it cannot read
        name = {CSV: "csv", LIBSVM: "libsvm", JSON: "json", JSONLINES: "jsonlines"}.get(kind, "parquet")
        raise InferenceError(
            f"Loading {name} data failed with Exception, please ensure data is in {name} format:\n"
            f" {type(exc)}\n {exc}", 415
        ) from exc


# -- responses ----------------------------------------------------------------------------------------


def _accept(accept: str | None) -> str:
    """The response type for an Accept header (its first supported media range)."""
    default = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or CSV
    if not accept:
        return _ACCEPTS.get(_media(default), CSV)
    for part in accept.split(","):
        media = _media(part)
        if media in ("*/*", "") or media == "text/*" or media == "application/*":
            return _ACCEPTS.get(_media(default), CSV)
        if media in _ACCEPTS:
            return _ACCEPTS[media]
    raise InferenceError(
        f"Accept type {accept} is not supported. Please use supported accept types: "
        "['application/json', 'application/jsonlines', 'text/csv'].", 406
    )


def encode_csv(preds: np.ndarray) -> str:
    values = preds.tolist()
    if preds.ndim > 1:
        body = "\n".join(",".join(map(str, row)) for row in values)
        return body + "\n" if os.environ.get("SAGEMAKER_BATCH") else body
    if os.environ.get("SAGEMAKER_BATCH"):
        return "\n".join(map(str, values)) + "\n"
    return ",".join(map(str, values))


def encode_json(preds: np.ndarray) -> str:
    return json.dumps({"predictions": [{"score": v} for v in preds.tolist()]})


def encode_jsonlines(preds: np.ndarray) -> str:
    return "".join(json.dumps({"score": v}) + "\n" for v in preds.tolist())


def _nan() -> float:
    return float("nan")


def selected_predictions(preds: np.ndarray, keys: list[str], objective: str, num_class: int) -> list[dict]:
    """The container's ``get_selected_predictions``: the asked keys of each prediction (NaN when the
    objective cannot answer one)."""
    if objective == "reg:linear":
        objective = "reg:squarederror"
    if objective not in VALID_OBJECTIVES:
        message = f"Objective `{objective}` unsupported for selectable inference predictions."
        raise InferenceError(message, 500)
    valid = VALID_OBJECTIVES[objective]
    out = []
    for raw in preds:
        item: dict[str, Any] = {}
        for key in keys:
            if key not in valid:
                item[key] = _nan()
            elif key == PREDICTED_LABEL:
                if objective in ("binary:hinge", "multi:softmax"):
                    item[key] = raw.item()
                elif objective == "binary:logistic":
                    item[key] = int(raw > 0.5)
                elif objective == "binary:logitraw":
                    item[key] = int(raw > 0)
                else:
                    item[key] = int(np.argmax(raw))
            elif key == LABELS:
                item[key] = [0, 1] if objective.startswith("binary:") else list(range(num_class))
            elif key == PROBABILITY:
                item[key] = float(np.max(raw)) if objective == "multi:softprob" else raw.item()
            elif key == PROBABILITIES:
                item[key] = raw.tolist() if objective == "multi:softprob" else [1.0 - raw.item(), raw.item()]
            elif key == RAW_SCORE:
                item[key] = float(np.max(raw)) if objective == "multi:softprob" else raw.item()
            elif key == RAW_SCORES:
                item[key] = raw.tolist() if objective == "multi:softprob" else [1.0 - raw.item(), raw.item()]
            elif key == PREDICTED_SCORE:
                item[key] = raw.item()
        out.append(item)
    return out


def encode_selected(predictions: list[dict], keys: list[str], accept: str) -> str:
    if accept == JSON:
        return json.dumps({"predictions": predictions})
    if accept == JSONLINES:
        return "".join(json.dumps(p) + "\n" for p in predictions)
    lines = []
    for p in predictions:
        lines.append(",".join(f'"{p[k]}"' if isinstance(p[k], list) else str(p[k]) for k in keys))
    body = "\n".join(lines)
    return body + "\n" if os.environ.get("SAGEMAKER_BATCH") else body


def transform_fn(
    model: Any, data: str | bytes, content_type: str | None, accept: str | None
) -> tuple[str, str]:
    """Decode, predict, encode: ``(body, content type)``."""
    accept_type = _accept(accept)
    features = parse_request(data, content_type)
    model = _as_model(model)
    try:
        preds = model.predict(features)
    except Exception as exc:  # noqa: BLE001 - the container answers 400
        raise InferenceError(f"Unable to evaluate payload provided: {exc}", 400) from exc
    selected = os.environ.get("SAGEMAKER_INFERENCE_OUTPUT")
    if selected:
        keys = selected.replace(" ", "").lower().split(",")
        predictions = selected_predictions(preds, keys, model.objective, model.num_class)
        return encode_selected(predictions, keys, accept_type), accept_type
    if accept_type == JSON:
        return encode_json(preds), JSON
    if accept_type == JSONLINES:
        return encode_jsonlines(preds), JSONLINES
    return encode_csv(preds), CSV
