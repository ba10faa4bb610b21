"""Homeport's Linear Learner: a subset of SageMaker's built-in Linear Learner algorithm.

Training (``train``) reads the SageMaker training contract under ``$SAGEMAKER_BASE_DIR`` (default
``/opt/ml``): ``input/config/hyperparameters.json``, ``input/config/inputdataconfig.json``, the
``train`` channel (required) and the optional ``validation`` and ``test`` channels under
``input/data/``. Data is ``text/csv`` (label in the first column, no header) or
``application/x-recordio-protobuf`` (what the SageMaker SDK's ``record_set()`` uploads); files may
be gzipped and nested in folders. A channel without a ContentType is sniffed.

Like the real algorithm it trains several linear models at once (``num_models``: the given
settings plus neighbours for every ``auto`` one: learning rate, wd, l1, positive example weight),
with mini-batch SGD/Adam/RMSProp in numpy, on standardised features (and labels, for regression),
stops early on the validation channel, picks the best model by
``binary_classifier_model_selection_criteria`` (binary: with a calibrated decision threshold) or
by the loss, and prints the same ``#quality_metric`` lines SageMaker's metric definitions read.

The model is written to ``model/`` twice: ``linear-learner-model.npz`` (weights in raw feature
space, normalisation folded in; read by ``linear_learner_handler``) and ``model.onnx`` (the same
predictions: MatMul + Add, then Sigmoid/Softmax/ArgMax). Errors end the process non-zero with the
reason in ``output/failure``.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import math
import os
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "linear-learner-model.npz"
ONNX_FILE = "model.onnx"
FORMAT_VERSION = 1
PREDICTOR_TYPES = ("binary_classifier", "multiclass_classifier", "regressor")
CSV = "text/csv"
RECORDIO = "application/x-recordio-protobuf"
CHANNELS = ("train", "validation", "test")

# -- errors and logging ---------------------------------------------------------------------------


class ClientError(Exception):
    """A problem with the job's hyperparameters or data: reported as ``ClientError: ...``."""


def _host(base: Path | None = None) -> str:
    if base is not None:
        try:
            config = json.loads((base / "input" / "config" / "resourceconfig.json").read_text())
            return str(config.get("current_host") or "algo-1")
        except (OSError, ValueError, AttributeError):
            pass
    return "algo-1"


def log(message: str, level: str = "INFO") -> None:
    """One line in the real algorithm's layout: ``[MM/DD/YYYY HH:MM:SS INFO <id>] message``."""
    stamp = time.strftime("%m/%d/%Y %H:%M:%S")
    print(f"[{stamp} {level} {os.getpid()}] {message}", flush=True)


def _fmt(value: float) -> str:
    return repr(float(value))


# -- hyperparameters ------------------------------------------------------------------------------

AUTO = "auto"
Parser = Callable[[str, str], Any]


def _invalid(name: str, raw: str, expected: str) -> ClientError:
    return ClientError(f"Hyperparameter '{name}': {raw!r} is not {expected} (caused by ValidationError)")


def _choice(*values: str) -> Parser:
    def parse(name: str, raw: str) -> str:
        value = raw.strip()
        if value not in values:
            raise ClientError(
                f"Hyperparameter '{name}': {raw!r} is not one of {list(values)} (caused by ValidationError)"
            )
        return value

    return parse


def _boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise _invalid(name, raw, "one of ['true', 'false']")


def _tristate(name: str, raw: str) -> bool | str:
    if raw.strip().lower() == AUTO:
        return AUTO
    try:
        return _boolean(name, raw)
    except ClientError:
        raise _invalid(name, raw, "one of ['auto', 'true', 'false']") from None


def _integer(low: int, high: int | None = None, auto: bool = False) -> Parser:
    expected = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
    if auto:
        expected = f"'auto' or {expected}"

    def parse(name: str, raw: str) -> int | str:
        text = raw.strip()
        if auto and text.lower() == AUTO:
            return AUTO
        try:
            number = float(text)
        except ValueError:
            raise _invalid(name, raw, expected) from None
        if not number.is_integer() or number < low or (high is not None and number > high):
            raise _invalid(name, raw, expected)
        return int(number)

    return parse


def _real(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    auto: bool = False,
    words: tuple[str, ...] = (),
) -> Parser:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    expected = "a float" + (" " + " and ".join(parts) if parts else "")
    options = ([AUTO] if auto else []) + list(words)
    if options:
        expected = " or ".join([*(repr(w) for w in options), expected])

    def parse(name: str, raw: str) -> float | str:
        text = raw.strip()
        if text.lower() in options:
            return text.lower()
        try:
            number = float(text)
        except ValueError:
            raise _invalid(name, raw, expected) from None
        if not math.isfinite(number):
            raise _invalid(name, raw, expected)
        if low is not None and (number < low or (low_open and number == low)):
            raise _invalid(name, raw, expected)
        if high is not None and (number > high or (high_open and number == high)):
            raise _invalid(name, raw, expected)
        return number

    return parse


BINARY_LOSSES = ("logistic", "hinge_loss")
MULTICLASS_LOSSES = ("softmax_loss",)
REGRESSION_LOSSES = (
    "squared_loss",
    "absolute_loss",
    "eps_insensitive_squared_loss",
    "eps_insensitive_absolute_loss",
    "quantile_loss",
    "huber_loss",
)
SELECTION_CRITERIA = (
    "accuracy",
    "f_beta",
    "precision_at_target_recall",
    "recall_at_target_precision",
    "loss_function",
    # Accepted by the SageMaker SDK's LinearLearner estimator too.
    "f1",
    "cross_entropy_loss",
)

# name -> (parser, default). Defaults are the documented ones; "auto" is resolved in Settings.
HYPERPARAMETERS: dict[str, tuple[Parser, Any]] = {
    "predictor_type": (_choice(*PREDICTOR_TYPES), None),
    "num_classes": (_integer(3, 1_000_000), None),
    "feature_dim": (_integer(1, auto=True), AUTO),
    "accuracy_top_k": (_integer(1, 1_000_000), 3),
    "balance_multiclass_weights": (_boolean, False),
    "beta_1": (_real(0.0, 1.0, high_open=True, auto=True), AUTO),
    "beta_2": (_real(0.0, 1.0, high_open=True, auto=True), AUTO),
    "bias_lr_mult": (_real(0.0, low_open=True, auto=True), AUTO),
    "bias_wd_mult": (_real(0.0, auto=True), AUTO),
    "binary_classifier_model_selection_criteria": (_choice(*SELECTION_CRITERIA), "accuracy"),
    "early_stopping_patience": (_integer(1), 3),
    "early_stopping_tolerance": (_real(0.0, low_open=True), 0.001),
    "epochs": (_integer(1), 15),
    "f_beta": (_real(0.0, low_open=True), 1.0),
    "huber_delta": (_real(0.0, low_open=True), 1.0),
    "init_bias": (_real(), 0.0),
    "init_method": (_choice("uniform", "normal"), "uniform"),
    "init_scale": (_real(0.0, low_open=True), 0.07),
    "init_sigma": (_real(0.0, low_open=True), 0.01),
    "l1": (_real(0.0, auto=True), AUTO),
    "learning_rate": (_real(0.0, low_open=True, auto=True), AUTO),
    "loss": (_choice(AUTO, *BINARY_LOSSES, *MULTICLASS_LOSSES, *REGRESSION_LOSSES), AUTO),
    "loss_insensitivity": (_real(0.0, low_open=True), 0.01),
    "lr_scheduler_factor": (_real(0.0, 1.0, low_open=True, high_open=True, auto=True), AUTO),
    "lr_scheduler_minimum_lr": (_real(0.0, low_open=True, auto=True), AUTO),
    "lr_scheduler_step": (_integer(1, auto=True), AUTO),
    "margin": (_real(0.0), 1.0),
    "mini_batch_size": (_integer(1), 1000),
    "momentum": (_real(0.0, 1.0, high_open=True, auto=True), AUTO),
    "normalize_data": (_tristate, True),
    "normalize_label": (_tristate, AUTO),
    "num_calibration_samples": (_integer(1, auto=True), AUTO),
    "num_models": (_integer(1, auto=True), AUTO),
    "num_point_for_scaler": (_integer(1), 10_000),
    "optimizer": (_choice(AUTO, "sgd", "adam", "rmsprop"), AUTO),
    "positive_example_weight_mult": (_real(0.0, low_open=True, words=(AUTO, "balanced")), 1.0),
    "quantile": (_real(0.0, 1.0, low_open=True, high_open=True), 0.5),
    "target_precision": (_real(0.0, 1.0, low_open=True, high_open=True), 0.8),
    "target_recall": (_real(0.0, 1.0, low_open=True, high_open=True), 0.8),
    "unbias_data": (_tristate, AUTO),
    "unbias_label": (_tristate, AUTO),
    "use_bias": (_boolean, True),
    "use_lr_scheduler": (_boolean, True),
    "wd": (_real(0.0, auto=True), AUTO),
    # Homeport extension: the seed of initialisation and shuffling (runs are reproducible).
    "seed": (_integer(0), 0),
}


def _text(value: Any) -> str:
    """A hyperparameter's text: SageMaker passes strings; a JSON-quoted one ('"adam"') is unquoted."""
    if not isinstance(value, str):
        return json.dumps(value)
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value


def parse_hyperparameters(raw: dict[str, Any]) -> dict[str, Any]:
    """Validated hyperparameters with defaults filled in; ClientError names the offending one."""
    unexpected = sorted(k for k in raw if k not in HYPERPARAMETERS and not k.startswith(("_", "sagemaker_")))
    if unexpected:
        raise ClientError(
            f"Additional hyperparameters are not allowed ({unexpected[0]!r} was unexpected); "
            f"known hyperparameters: {', '.join(sorted(HYPERPARAMETERS))} (caused by ValidationError)"
        )
    texts = {name: _text(value) for name, value in raw.items() if value is not None}
    values: dict[str, Any] = {}
    for name, (parser, default) in HYPERPARAMETERS.items():
        if name not in texts:
            values[name] = default
        elif name == "num_classes" and texts.get("predictor_type", "").strip() != "multiclass_classifier":
            values[name] = None  # ignored unless multiclass, as the documentation says
        else:
            values[name] = parser(name, texts[name])
    if values["predictor_type"] is None:
        raise ClientError(
            "No value(s) were specified for 'predictor_type' which are required hyperparameter(s) "
            "(caused by ValidationError)"
        )
    predictor = values["predictor_type"]
    if predictor == "multiclass_classifier" and values["num_classes"] is None:
        raise ClientError(
            "No value(s) were specified for 'num_classes' which are required hyperparameter(s) "
            "when predictor_type is 'multiclass_classifier' (caused by ValidationError)"
        )
    valid_losses = {
        "binary_classifier": BINARY_LOSSES,
        "multiclass_classifier": MULTICLASS_LOSSES,
        "regressor": REGRESSION_LOSSES,
    }[predictor]
    if values["loss"] == AUTO:
        values["loss"] = valid_losses[0]
    elif values["loss"] not in valid_losses:
        raise ClientError(
            f"Hyperparameter 'loss': {values['loss']!r} is not valid for predictor_type {predictor!r}; "
            f"valid values: {['auto', *valid_losses]} (caused by ValidationError)"
        )
    if "_tuning_objective_metric" in raw:
        values["num_models"] = 1  # automatic model tuning turns the internal tuning off
    return values


# -- RecordIO-wrapped protobuf (aialgs.data.Record) -----------------------------------------------

_MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", _MAGIC)
_LENGTH_MASK = (1 << 29) - 1


def iter_recordio(data: bytes) -> Iterator[bytes]:
    """The payloads of MXNet RecordIO records (multi-part records are joined)."""
    pos, end = 0, len(data)
    parts: list[bytes] | None = None
    while pos < end:
        if pos + 8 > end:
            raise ValueError("truncated RecordIO header")
        magic, header = struct.unpack_from("<II", data, pos)
        if magic != _MAGIC:
            raise ValueError(f"bad RecordIO magic number at byte {pos}")
        flag, length = header >> 29, header & _LENGTH_MASK
        pos += 8
        if pos + length > end:
            raise ValueError("truncated RecordIO record")
        payload = data[pos : pos + length]
        pos += (length + 3) & ~3
        if flag == 0:
            yield payload
        elif flag == 1:
            parts = [payload]
        elif parts is None:
            raise ValueError("RecordIO continuation without a start")
        else:
            parts.append(payload)
            if flag == 3:
                yield _MAGIC_BYTES.join(parts)
                parts = None


def write_recordio(payloads: Iterable[bytes]) -> bytes:
    out = io.BytesIO()
    for payload in payloads:
        out.write(struct.pack("<II", _MAGIC, len(payload)))
        out.write(payload)
        out.write(b"\0" * (-len(payload) % 4))
    return out.getvalue()


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed protobuf varint")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ValueError("truncated protobuf message")
        yield number, wire, value


def _packed_varints(buf: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        value, pos = _varint(buf, pos)
        out.append(value)
    return out


@dataclass
class Tensor:
    values: np.ndarray
    keys: list[int] = field(default_factory=list)
    shape: list[int] = field(default_factory=list)

    def dense(self, size: int | None = None) -> np.ndarray:
        if not self.keys:
            return self.values.astype(np.float64, copy=False)
        dim = size or (self.shape[0] if self.shape else max(self.keys) + 1)
        if max(self.keys) >= dim:
            raise ValueError(f"sparse key {max(self.keys)} is outside the vector's size {dim}")
        out = np.zeros(dim, dtype=np.float64)
        out[np.asarray(self.keys, dtype=np.int64)] = self.values
        return out


def _int32(values: list[int]) -> np.ndarray:
    return np.array([v - (1 << 64) if v >= 1 << 63 else v for v in values], dtype=np.float64)


def _tensor(buf: bytes, kind: int) -> Tensor:
    chunks: list[np.ndarray] = []
    keys: list[int] = []
    shape: list[int] = []
    for number, wire, value in _fields(buf):
        if number == 1:
            if kind == 2:  # float32
                chunks.append(np.frombuffer(value, dtype="<f4"))
            elif kind == 3:  # float64
                chunks.append(np.frombuffer(value, dtype="<f8"))
            else:  # int32
                chunks.append(_int32(_packed_varints(value) if wire == 2 else [value]))
        elif number == 2:
            keys.extend(_packed_varints(value) if wire == 2 else [value])
        elif number == 3:
            shape.extend(_packed_varints(value) if wire == 2 else [value])
    values = np.concatenate(chunks) if chunks else np.zeros(0)
    if keys and len(keys) != len(values):
        raise ValueError("sparse tensor with a different number of keys and values")
    return Tensor(values.astype(np.float64), keys, shape)


def _value(buf: bytes) -> Tensor | None:
    for number, _wire, value in _fields(buf):
        if number in (2, 3, 7):
            return _tensor(value, number)
        if number == 9:
            raise ValueError("Bytes values are not supported: features and labels must be numeric tensors")
    return None


def decode_record(buf: bytes) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """An ``aialgs.data.Record``: its ``features`` and ``label`` maps."""
    features: dict[str, Tensor] = {}
    label: dict[str, Tensor] = {}
    for number, wire, value in _fields(buf):
        if number in (1, 2) and wire == 2:
            key, tensor = "", None
            for entry_number, _w, entry_value in _fields(value):
                if entry_number == 1:
                    key = bytes(entry_value).decode("utf-8")
                elif entry_number == 2:
                    tensor = _value(entry_value)
            if tensor is not None:
                (features if number == 1 else label)[key] = tensor
    return features, label


def _pick(tensors: dict[str, Tensor], what: str) -> Tensor | None:
    if not tensors:
        return None
    if "values" in tensors:
        return tensors["values"]
    if len(tensors) == 1:
        return next(iter(tensors.values()))
    raise ValueError(f"record {what} have several tensors and none named 'values': {sorted(tensors)}")


def _enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _enc_field(number: int, payload: bytes) -> bytes:
    return _enc_varint((number << 3) | 2) + _enc_varint(len(payload)) + payload


def _enc_map(number: int, tensors: dict[str, np.ndarray]) -> bytes:
    out = b""
    for key, values in tensors.items():
        tensor = _enc_field(1, np.asarray(values, dtype="<f4").reshape(-1).tobytes())
        value = _enc_field(2, tensor)  # Value.float32_tensor
        out += _enc_field(number, _enc_field(1, key.encode()) + _enc_field(2, value))
    return out


def encode_record(
    features: dict[str, np.ndarray] | None = None, label: dict[str, np.ndarray] | None = None
) -> bytes:
    """An ``aialgs.data.Record`` with dense float32 tensors."""
    return _enc_map(1, features or {}) + _enc_map(2, label or {})


def write_dense_recordio(features: np.ndarray, labels: Sequence[float] | np.ndarray | None = None) -> bytes:
    """Rows as RecordIO-protobuf, as the SageMaker SDK's ``write_numpy_to_dense_tensor`` writes them."""
    records = []
    for i, row in enumerate(np.asarray(features, dtype=np.float64)):
        label = None if labels is None else {"values": np.array([labels[i]])}
        records.append(encode_record({"values": row}, label))
    return write_recordio(records)


def records_to_arrays(
    data: bytes, feature_dim: int | None = None, with_labels: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (n, d) and labels (n,) from RecordIO-protobuf bytes."""
    rows: list[np.ndarray] = []
    labels: list[float] = []
    for i, payload in enumerate(iter_recordio(data)):
        features, label = decode_record(payload)
        tensor = _pick(features, "features")
        if tensor is None:
            raise ValueError(f"record {i} has no features")
        rows.append(tensor.dense(feature_dim))
        if with_labels:
            target = _pick(label, "labels")
            if target is None or target.values.size == 0:
                raise ValueError(f"record {i} has no label")
            labels.append(float(target.values[0]))
    if not rows:
        return np.zeros((0, feature_dim or 0)), (np.zeros(0) if with_labels else None)
    sizes = {row.size for row in rows}
    if len(sizes) > 1:
        raise ValueError(f"records have different numbers of features: {sorted(sizes)}")
    return np.vstack(rows), (np.asarray(labels, dtype=np.float64) if with_labels else None)


# -- training data ---------------------------------------------------------------------------------


def _media_type(content_type: str | None) -> tuple[str | None, dict[str, str]]:
    if not content_type:
        return None, {}
    head, *params = content_type.split(";")
    options = {}
    for param in params:
        key, _, value = param.partition("=")
        options[key.strip().lower()] = value.strip()
    return head.strip().lower(), options


def _data_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name in ("_SUCCESS", "manifest"):
                continue
            path = Path(dirpath) / name
            if path.is_file():
                files.append(path)
    return files


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ClientError(f"Unable to decompress gzip file {path}: {exc}") from None
    return data


def _parse_csv(data: bytes, path: Path) -> np.ndarray:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ClientError(f"Unable to read {path} as text/csv: it is not UTF-8 text") from None
    if not text.strip():
        return np.zeros((0, 0))
    try:
        with np.errstate(all="ignore"):
            return np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError as exc:
        raise ClientError(
            f"Unable to parse {path} as text/csv: {exc} (text/csv data has the label in the first "
            "column, no header row and numeric values only)"
        ) from None


@dataclass
class Dataset:
    channel: str
    features: np.ndarray
    labels: np.ndarray

    @property
    def size(self) -> int:
        return int(self.labels.shape[0])


def read_channel(
    channel: str, root: Path, content_type: str | None, feature_dim: int | None
) -> Dataset | None:
    media, options = _media_type(content_type)
    if media in ("text/csv", "csv", "text/x-csv"):
        media = CSV
        label_size = options.get("label_size", "1")
        if label_size != "1":
            raise ClientError(
                f"Channel '{channel}': text/csv;label_size={label_size} is not supported: "
                "the label must be the first column (label_size=1)"
            )
    elif media in (RECORDIO, "application/x-recordio"):
        media = RECORDIO
    elif media is not None:
        raise ClientError(
            f"Channel '{channel}': content type {content_type!r} is not supported by this algorithm; "
            f"supported content types: {CSV}, {RECORDIO}"
        )
    files = _data_files(root) if root.is_dir() else []
    matrices: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    for path in files:
        data = _read(path)
        if not data:
            continue
        kind = media or (RECORDIO if data[:4] == _MAGIC_BYTES else CSV)
        if kind == RECORDIO:
            try:
                features, labels = records_to_arrays(data, feature_dim)
            except (ValueError, IndexError, UnicodeDecodeError) as exc:
                raise ClientError(f"Unable to read {path} as {RECORDIO}: {exc}") from None
            assert labels is not None
        else:
            table = _parse_csv(data, path)
            if table.size == 0:
                continue
            if table.shape[1] < 2:
                raise ClientError(
                    f"{path} has {table.shape[1]} column(s): text/csv training data needs the label "
                    "in the first column followed by at least one feature"
                )
            features, labels = table[:, 1:], table[:, 0]
        if matrices and features.shape[1] != matrices[0].shape[1]:
            raise ClientError(
                f"Channel '{channel}': {path} has {features.shape[1]} features but earlier files "
                f"have {matrices[0].shape[1]}"
            )
        matrices.append(features)
        label_parts.append(labels)
    if not matrices:
        return None
    X = np.vstack(matrices) if len(matrices) > 1 else matrices[0]
    y = np.concatenate(label_parts)
    if not np.all(np.isfinite(X)):
        row = int(np.argwhere(~np.isfinite(X))[0][0])
        raise ClientError(f"Channel '{channel}': record {row} has a missing or non-finite feature value")
    if not np.all(np.isfinite(y)):
        row = int(np.argwhere(~np.isfinite(y))[0][0])
        raise ClientError(f"Channel '{channel}': record {row} has a missing or non-finite label")
    return Dataset(channel, np.ascontiguousarray(X, dtype=np.float64), y.astype(np.float64))


def check_labels(data: Dataset, predictor_type: str, num_classes: int | None) -> None:
    y = data.labels
    if predictor_type == "binary_classifier":
        bad = y[(y != 0) & (y != 1)]
        if bad.size:
            raise ClientError(
                f"Channel '{data.channel}': labels must be 0 or 1 for predictor_type 'binary_classifier'; "
                f"found {bad[0]:g}"
            )
    elif predictor_type == "multiclass_classifier":
        assert num_classes is not None
        bad = y[(y != np.round(y)) | (y < 0) | (y >= num_classes)]
        if bad.size:
            raise ClientError(
                f"Channel '{data.channel}': labels must be integers from 0 to num_classes - 1 = "
                f"{num_classes - 1} for predictor_type 'multiclass_classifier'; found {bad[0]:g}"
            )


# -- losses and metrics ----------------------------------------------------------------------------

OBJECTIVE_NAMES = {
    "logistic": "binary_classification_cross_entropy_objective",
    "hinge_loss": "hinge_loss_objective",
    "softmax_loss": "multiclass_cross_entropy_objective",
    "squared_loss": "mse_objective",
    "absolute_loss": "absolute_loss_objective",
    "eps_insensitive_squared_loss": "eps_insensitive_squared_loss_objective",
    "eps_insensitive_absolute_loss": "eps_insensitive_absolute_loss_objective",
    "quantile_loss": "quantile_loss_objective",
    "huber_loss": "huber_loss_objective",
}
# Regression losses scale with the label: a loss in standardised label units times scale**power.
_SCALE_POWER = {"squared_loss": 2, "eps_insensitive_squared_loss": 2, "huber_loss": 2}


@dataclass(frozen=True)
class LossParams:
    margin: float = 1.0
    quantile: float = 0.5
    insensitivity: float = 0.01
    huber_delta: float = 1.0

    def scaled(self, scale: float) -> LossParams:
        return LossParams(self.margin, self.quantile, self.insensitivity / scale, self.huber_delta / scale)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    e = np.exp(z[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def loss_and_grad(loss: str, z: np.ndarray, y: np.ndarray, p: LossParams) -> tuple[np.ndarray, np.ndarray]:
    """Per-example losses (..., n) and their gradients wrt the outputs z (..., n, k)."""
    if loss == "softmax_loss":
        rows, labels = np.arange(y.shape[-1]), y.astype(np.int64)
        shifted = z - z.max(axis=-1, keepdims=True)
        lse = np.log(np.exp(shifted).sum(axis=-1))
        grad = np.exp(shifted - lse[..., None])
        grad[..., rows, labels] -= 1.0
        return lse - shifted[..., rows, labels], grad
    s = z[..., 0]
    if loss == "logistic":
        values = np.logaddexp(0.0, s) - y * s
        g = _sigmoid(s) - y
    elif loss == "hinge_loss":
        sign = 2.0 * y - 1.0
        gap = p.margin - sign * s
        values = np.maximum(gap, 0.0)
        g = np.where(gap > 0, -sign, 0.0)
    else:
        r = s - y
        a = np.abs(r)
        if loss == "squared_loss":
            values, g = r * r, 2.0 * r
        elif loss == "absolute_loss":
            values, g = a, np.sign(r)
        elif loss == "eps_insensitive_squared_loss":
            excess = np.maximum(a - p.insensitivity, 0.0)
            values, g = excess * excess, 2.0 * excess * np.sign(r)
        elif loss == "eps_insensitive_absolute_loss":
            values, g = np.maximum(a - p.insensitivity, 0.0), np.where(a > p.insensitivity, np.sign(r), 0.0)
        elif loss == "quantile_loss":
            d = y - s
            values = np.maximum(p.quantile * d, (p.quantile - 1.0) * d)
            g = np.where(d > 0, -p.quantile, 1.0 - p.quantile)
        elif loss == "huber_loss":
            delta = p.huber_delta
            values = np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))
            g = np.clip(r, -delta, delta)
        else:  # pragma: no cover - validated earlier
            raise ValueError(f"unknown loss {loss}")
    return values, g[..., None]


def calibrate(
    scores: np.ndarray,
    y: np.ndarray,
    criteria: str,
    default: float,
    beta: float = 1.0,
    target_recall: float = 0.8,
    target_precision: float = 0.8,
) -> tuple[float, float]:
    """(threshold, value): the decision threshold (predict 1 when score > threshold) that is best
    for the model selection criteria, and the criteria's value there (higher is better)."""
    n = scores.size
    positives = float(y.sum())
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], y[order]
    last = np.r_[s[1:] != s[:-1], True] if n else np.zeros(0, dtype=bool)
    tp = np.r_[0.0, np.cumsum(t)[last]]
    fp = np.r_[0.0, np.cumsum(1.0 - t)[last]]
    ends = s[last]
    lower = np.r_[ends[1:], ends[-1] - max(1.0, abs(ends[-1])) * 1e-3] if n else np.zeros(0)
    thresholds = np.r_[ends[0] if n else default, (ends + lower) / 2.0]
    negatives = n - positives
    predicted = tp + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 1.0)
        recall = tp / positives if positives else np.ones_like(tp)
    if criteria == "accuracy":
        value = (tp + (negatives - fp)) / max(n, 1)
    elif criteria in ("f_beta", "f1"):
        b2 = 1.0 if criteria == "f1" else beta * beta
        denom = b2 * precision + recall
        value = np.where(denom > 0, (1 + b2) * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    elif criteria == "precision_at_target_recall":
        value = np.where(recall >= target_recall, precision, -1.0 + recall)
    elif criteria == "recall_at_target_precision":
        value = np.where(precision >= target_precision, recall, -1.0 + precision)
    else:
        raise ValueError(criteria)
    best = value.max()
    candidates = np.flatnonzero(value >= best - 1e-12)
    pick = candidates[np.argmin(np.abs(thresholds[candidates] - default))]
    return float(thresholds[pick]), float(value[pick])


def roc_auc(scores: np.ndarray, y: np.ndarray) -> float:
    positives = float(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    _unique, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0
    ranks = average_rank[inverse]
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def binary_metrics(scores: np.ndarray, y: np.ndarray, threshold: float, beta: float) -> dict[str, float]:
    predicted = scores > threshold
    truth = y == 1
    tp = float(np.sum(predicted & truth))
    fp = float(np.sum(predicted & ~truth))
    fn = float(np.sum(~predicted & truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    b2 = beta * beta
    f = (1 + b2) * precision * recall / (b2 * precision + recall) if precision + recall else 0.0
    return {
        "binary_classification_accuracy": float(np.mean(predicted == truth)),
        f"binary_f_{beta:.3f}": f,
        "precision": precision,
        "recall": recall,
        "roc_auc_score": roc_auc(scores, y),
    }


def multiclass_metrics(probabilities: np.ndarray, y: np.ndarray, top_k: int, beta: float) -> dict[str, float]:
    labels = y.astype(np.int64)
    n, k = probabilities.shape
    predicted = probabilities.argmax(axis=1)
    true_score = probabilities[np.arange(n), labels]
    rank = 1 + np.sum(probabilities > true_score[:, None], axis=1)
    present = np.union1d(labels, predicted)
    precisions, recalls, fs = [], [], []
    b2 = beta * beta
    for c in present:
        tp = float(np.sum((predicted == c) & (labels == c)))
        p = tp / max(float(np.sum(predicted == c)), 1.0) if np.any(predicted == c) else 0.0
        r = tp / float(np.sum(labels == c)) if np.any(labels == c) else 0.0
        precisions.append(p)
        recalls.append(r)
        fs.append((1 + b2) * p * r / (b2 * p + r) if p + r else 0.0)
    balanced = float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)])) if n else 0.0
    clipped = np.clip(true_score, 1e-15, 1.0)
    return {
        "multiclass_accuracy": float(np.mean(predicted == labels)),
        f"multiclass_top_k_accuracy_{top_k}": float(np.mean(rank <= min(top_k, k))),
        "dcg": float(np.mean(1.0 / np.log2(1.0 + rank))),
        "macro_recall": float(np.mean(recalls)),
        "macro_precision": float(np.mean(precisions)),
        f"macro_f_{beta:.3f}": float(np.mean(fs)),
        "multiclass_balanced_accuracy": balanced,
        "multiclass_log_loss": float(np.mean(-np.log(clipped))),
    }


def regression_metrics(predictions: np.ndarray, y: np.ndarray) -> dict[str, float]:
    r = predictions - y
    return {"mse": float(np.mean(r * r)), "absolute_loss": float(np.mean(np.abs(r)))}


# -- the model -------------------------------------------------------------------------------------


@dataclass
class LinearModel:
    """A trained linear model in raw feature space: outputs = features @ weights + bias."""

    predictor_type: str
    loss: str
    weights: np.ndarray  # (feature_dim, k)
    bias: np.ndarray  # (k,)
    threshold: float = 0.5
    num_classes: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return int(self.weights.shape[0])

    def outputs(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weights + self.bias

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(scores, predicted labels): binary scores are P(label = 1) (the raw output for
        hinge loss), multiclass scores are class probabilities (n, k), regression has no labels."""
        z = self.outputs(np.asarray(features, dtype=np.float64))
        if self.predictor_type == "multiclass_classifier":
            probabilities = _softmax(z)
            return probabilities, probabilities.argmax(axis=1)
        if self.predictor_type == "binary_classifier":
            scores = _sigmoid(z[:, 0]) if self.loss == "logistic" else z[:, 0]
            return scores, (scores > self.threshold).astype(np.int64)
        return z[:, 0], None

    def save(self, model_dir: Path) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "algorithm": "linear-learner",
            "predictor_type": self.predictor_type,
            "loss": self.loss,
            "num_classes": self.num_classes,
            "feature_dim": self.feature_dim,
            "threshold": self.threshold,
            **self.info,
        }
        with open(model_dir / MODEL_FILE, "wb") as f:
            np.savez(f, weights=self.weights, bias=self.bias, meta=np.array(json.dumps(meta)))

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            weights = np.asarray(data["weights"], dtype=np.float64)
            bias = np.asarray(data["bias"], dtype=np.float64)
        known = {
            "format_version",
            "algorithm",
            "predictor_type",
            "loss",
            "num_classes",
            "feature_dim",
            "threshold",
        }
        return cls(
            predictor_type=meta["predictor_type"],
            loss=meta["loss"],
            weights=weights,
            bias=bias,
            threshold=float(meta.get("threshold", 0.5)),
            num_classes=meta.get("num_classes"),
            info={k: v for k, v in meta.items() if k not in known},
        )

    def to_onnx(self) -> Any:
        """The same predictions as an ONNX graph: input ``features`` (N, feature_dim) float32;
        outputs ``score`` ((N,) or (N, k) float32) and, for classifiers, ``predicted_label`` (N,) int64."""
        from onnx import TensorProto, helper, numpy_helper

        k = self.weights.shape[1]
        inits = [
            numpy_helper.from_array(self.weights.astype(np.float32), "weights"),
            numpy_helper.from_array(self.bias.astype(np.float32), "bias"),
        ]
        nodes = [
            helper.make_node("MatMul", ["features", "weights"], ["product"]),
            helper.make_node("Add", ["product", "bias"], ["logits"]),
        ]
        outputs = []
        if self.predictor_type == "multiclass_classifier":
            nodes.append(helper.make_node("Softmax", ["logits"], ["score"], axis=1))
            nodes.append(helper.make_node("ArgMax", ["score"], ["predicted_label"], axis=1, keepdims=0))
            outputs.append(helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", k]))
        else:
            inits.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"))
            if self.predictor_type == "binary_classifier" and self.loss == "logistic":
                nodes.append(helper.make_node("Sigmoid", ["logits"], ["probability"]))
                nodes.append(helper.make_node("Reshape", ["probability", "flat"], ["score"]))
            else:
                nodes.append(helper.make_node("Reshape", ["logits", "flat"], ["score"]))
            outputs.append(helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"]))
            if self.predictor_type == "binary_classifier":
                inits.append(numpy_helper.from_array(np.array(self.threshold, dtype=np.float32), "threshold"))
                nodes.append(helper.make_node("Greater", ["score", "threshold"], ["above"]))
                nodes.append(helper.make_node("Cast", ["above"], ["predicted_label"], to=TensorProto.INT64))
        if self.predictor_type != "regressor":
            outputs.append(helper.make_tensor_value_info("predicted_label", TensorProto.INT64, ["N"]))
        graph = helper.make_graph(
            nodes,
            f"linear_learner_{self.predictor_type}",
            [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", self.feature_dim])],
            outputs,
            initializer=inits,
        )
        model = helper.make_model(
            graph, producer_name="homeport-linear-learner", opset_imports=[helper.make_opsetid("", 13)]
        )
        model.ir_version = 8  # readable by onnxruntime >= 1.10
        return model

    def save_onnx(self, path: Path) -> None:
        import onnx

        model = self.to_onnx()
        onnx.checker.check_model(model)
        onnx.save(model, str(path))


# -- training --------------------------------------------------------------------------------------


@dataclass
class Candidate:
    learning_rate: float
    wd: float
    l1: float
    positive_weight: float | str  # a multiplier or "balanced"

    def describe(
        self, hp: dict[str, Any], optimizer: str, schedule: tuple[int, float, float]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "optimizer": optimizer,
            "learning_rate": self.learning_rate,
            "wd": self.wd,
            "l1": self.l1,
        }
        if hp["use_lr_scheduler"]:
            out.update(
                lr_scheduler_step=schedule[0],
                lr_scheduler_factor=schedule[1],
                lr_scheduler_minimum_lr=schedule[2],
            )
        if hp["predictor_type"] == "binary_classifier":
            out["positive_example_weight_mult"] = self.positive_weight
        return out


_LEARNING_RATES = {
    "adam": (0.01, 0.1, 0.03, 0.003),
    "rmsprop": (0.01, 0.1, 0.03, 0.003),
    "sgd": (0.1, 0.3, 0.03, 0.01),
}


def candidates(hp: dict[str, Any], optimizer: str, steps: int) -> list[Candidate]:
    """Model 0 has the given settings (defaults for ``auto``); the others vary the ``auto`` ones.
    ``steps`` (updates in all epochs) decides model 0's automatic learning rate: few updates
    call for a larger one."""
    lrs: tuple[float, ...] = (hp["learning_rate"],)
    if hp["learning_rate"] == AUTO:
        lrs = _LEARNING_RATES[optimizer]
        if steps < 300:
            lrs = (lrs[1], lrs[0], *lrs[2:])
    wds = (0.0, 1e-4, 1e-2) if hp["wd"] == AUTO else (hp["wd"],)
    l1s = (0.0, 1e-4) if hp["l1"] == AUTO else (hp["l1"],)
    if hp["predictor_type"] != "binary_classifier":
        positives: tuple[float | str, ...] = (1.0,)
    elif hp["positive_example_weight_mult"] == AUTO:
        positives = (1.0, "balanced")
    else:
        positives = (hp["positive_example_weight_mult"],)
    grid = [Candidate(lr, wd, l1, pw) for pw, lr, wd, l1 in itertools.product(positives, lrs, wds, l1s)]
    wanted = hp["num_models"]
    if wanted == AUTO:
        wanted = min(len(grid), 32)
        if len(grid) > wanted:  # spread the selection over the grid, always keeping model 0
            picks = np.unique(np.linspace(0, len(grid) - 1, wanted).round().astype(int))
            return [grid[i] for i in picks]
    return [grid[i % len(grid)] for i in range(int(wanted))]


@dataclass
class Scaler:
    feature_shift: np.ndarray
    feature_scale: np.ndarray
    label_shift: float = 0.0
    label_scale: float = 1.0


def fit_scaler(hp: dict[str, Any], X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Scaler:
    n, d = X.shape
    sample = (
        rng.choice(n, hp["num_point_for_scaler"], replace=False)
        if n > hp["num_point_for_scaler"]
        else slice(None)
    )
    Xs, ys = X[sample], y[sample]
    unbias = hp["use_bias"] if hp["unbias_data"] == AUTO else hp["unbias_data"]
    normalize = hp["normalize_data"] is not False
    shift = Xs.mean(axis=0) if unbias else np.zeros(d)
    scale = np.ones(d)
    if normalize:
        spread = Xs.std(axis=0) if unbias else np.sqrt(np.mean(Xs * Xs, axis=0))
        scale = np.where(spread > 1e-12, spread, 1.0)
    scaler = Scaler(shift, scale)
    if hp["predictor_type"] == "regressor":
        normalize_label = hp["normalize_label"] is True or hp["normalize_label"] == AUTO
        unbias_label = hp["use_bias"] if hp["unbias_label"] == AUTO else hp["unbias_label"]
        scaler.label_shift = float(ys.mean()) if unbias_label else 0.0
        if normalize_label:
            spread = float(ys.std()) if unbias_label else float(np.sqrt(np.mean(ys * ys)))
            scaler.label_scale = spread if spread > 1e-12 else 1.0
    return scaler


class Optimizer:
    """SGD with momentum, Adam or RMSProp for every model at once, each with its own learning rate,
    wd and l1; the learning rate schedule and the bias multipliers are shared."""

    def __init__(
        self,
        kind: str,
        hp: dict[str, Any],
        models: Sequence[Candidate],
        schedule: tuple[int, float, float],
        w_shape: tuple[int, ...],
        b_shape: tuple[int, ...],
    ) -> None:
        self.kind = kind
        self.schedule = schedule if hp["use_lr_scheduler"] else None
        self.use_bias = hp["use_bias"]
        self.lr = np.array([c.learning_rate for c in models])
        self.wd = np.array([c.wd for c in models])[:, None, None]
        self.l1 = np.array([c.l1 for c in models])[:, None, None]
        self.bias_lr = 1.0 if hp["bias_lr_mult"] == AUTO else hp["bias_lr_mult"]
        self.bias_wd = (0.0 if hp["bias_wd_mult"] == AUTO else hp["bias_wd_mult"]) * self.wd[:, :, 0]
        self.beta1 = 0.9 if hp["beta_1"] == AUTO else hp["beta_1"]
        self.beta2 = 0.999 if hp["beta_2"] == AUTO else hp["beta_2"]
        self.momentum = 0.9 if hp["momentum"] == AUTO else hp["momentum"]
        self.moments = [np.zeros(w_shape), np.zeros(w_shape), np.zeros(b_shape), np.zeros(b_shape)]
        self.steps = 0

    def rate(self) -> np.ndarray:
        if self.schedule is None:
            return self.lr
        step, factor, minimum = self.schedule
        return np.maximum(self.lr * factor ** ((self.steps - 1) // step), np.minimum(minimum, self.lr))

    def step(self, W: np.ndarray, b: np.ndarray, grad_w: np.ndarray, grad_b: np.ndarray) -> None:
        """One update, in place, from the loss gradients (regularisation is added here)."""
        self.steps += 1
        gW = grad_w + self.wd * W + self.l1 * np.sign(W)
        gb = grad_b + self.bias_wd * b
        rate = self.rate()
        rate_w, rate_b = rate[:, None, None], rate[:, None] * self.bias_lr
        mw, vw, mb, vb = self.moments
        if self.kind == "sgd":
            mw *= self.momentum
            mw += gW
            mb *= self.momentum
            mb += gb
            W -= rate_w * mw
            if self.use_bias:
                b -= rate_b * mb
            return
        if self.kind == "adam":
            beta1, decay = self.beta1, self.beta2
            mw *= beta1
            mw += (1 - beta1) * gW
            mb *= beta1
            mb += (1 - beta1) * gb
            first = 1 - beta1**self.steps
            second = 1 - decay**self.steps
            step_w, step_b = mw / first, mb / first
        else:  # rmsprop
            decay, second = 0.9, 1.0
            step_w, step_b = gW, gb
        vw *= decay
        vw += (1 - decay) * gW * gW
        vb *= decay
        vb += (1 - decay) * gb * gb
        W -= rate_w * step_w / (np.sqrt(vw / second) + 1e-8)
        if self.use_bias:
            b -= rate_b * step_b / (np.sqrt(vb / second) + 1e-8)

    def freeze(self, models: np.ndarray) -> None:
        """No more updates for these models (a boolean mask)."""
        self.lr = np.where(models, 0.0, self.lr)
        for moment in self.moments:
            moment[models] = 0.0


class Trainer:
    """Trains ``len(candidates)`` linear models at once on standardised data."""

    def __init__(self, hp: dict[str, Any], train: Dataset, validation: Dataset | None, host: str) -> None:
        self.hp = hp
        self.host = host
        self.kind = hp["predictor_type"]
        self.loss = hp["loss"]
        self.train = train
        self.validation = validation
        self.rng = np.random.default_rng(hp["seed"])
        self.optimizer = "adam" if hp["optimizer"] == AUTO else hp["optimizer"]
        steps = hp["epochs"] * -(-train.size // min(hp["mini_batch_size"], train.size))
        self.models = candidates(hp, self.optimizer, steps)
        self.k = hp["num_classes"] if self.kind == "multiclass_classifier" else 1
        self.scaler = fit_scaler(hp, train.features, train.labels, self.rng)
        self.params = LossParams(hp["margin"], hp["quantile"], hp["loss_insensitivity"], hp["huber_delta"])
        self.objective = OBJECTIVE_NAMES[self.loss]
        self.default_threshold = 0.5 if self.loss == "logistic" else 0.0
        criteria = hp["binary_classifier_model_selection_criteria"]
        self.selection = (
            criteria
            if self.kind == "binary_classifier" and criteria not in ("loss_function", "cross_entropy_loss")
            else "loss"
        )
        self.schedule = (
            100 if hp["lr_scheduler_step"] == AUTO else hp["lr_scheduler_step"],
            0.99 if hp["lr_scheduler_factor"] == AUTO else hp["lr_scheduler_factor"],
            1e-5 if hp["lr_scheduler_minimum_lr"] == AUTO else hp["lr_scheduler_minimum_lr"],
        )

    # normalised space
    def _norm_x(self, X: np.ndarray) -> np.ndarray:
        return (X - self.scaler.feature_shift) / self.scaler.feature_scale

    def _norm_y(self, y: np.ndarray) -> np.ndarray:
        return (y - self.scaler.label_shift) / self.scaler.label_scale

    def fold(self, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weights in raw feature space (and raw label units) for one model's W (d, k), b (k,)."""
        s = self.scaler
        raw_w = W / s.feature_scale[:, None] * s.label_scale
        raw_b = (b - (s.feature_shift / s.feature_scale) @ W) * s.label_scale + s.label_shift
        return raw_w, raw_b

    def _weights(self, y: np.ndarray, model: Candidate) -> np.ndarray:
        if self.kind == "binary_classifier":
            mult = model.positive_weight
            if mult == "balanced":
                positives = float(self.train.labels.sum())
                mult = (self.train.size - positives) / positives if positives else 1.0
            return np.where(y == 1, float(mult), 1.0)
        if self.kind == "multiclass_classifier" and self.hp["balance_multiclass_weights"]:
            counts = np.bincount(self.train.labels.astype(np.int64), minlength=self.k).astype(np.float64)
            class_weight = np.where(counts > 0, self.train.size / (self.k * np.maximum(counts, 1)), 0.0)
            return class_weight[y.astype(np.int64)]
        return np.ones_like(y)

    def raw_outputs(self, W: np.ndarray, b: np.ndarray, X: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """Outputs of every model (m, n, k) in raw label units for raw features X."""
        parts = []
        for start in range(0, X.shape[0], chunk):
            Xn = self._norm_x(X[start : start + chunk])
            parts.append(np.matmul(Xn, W) + b[:, None, :])
        z = np.concatenate(parts, axis=1) if parts else np.zeros((W.shape[0], 0, W.shape[2]))
        if self.kind == "regressor":
            z = z * self.scaler.label_scale + self.scaler.label_shift
        return z

    def scores(self, z: np.ndarray) -> np.ndarray:
        if self.kind == "multiclass_classifier":
            return _softmax(z)
        if self.kind == "binary_classifier" and self.loss == "logistic":
            return _sigmoid(z[..., 0])
        return z[..., 0]

    def objective_values(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Mean objective per model on raw outputs z (m, n, k)."""
        values, _ = loss_and_grad(self.loss, z, y, self.params)
        return values.mean(axis=-1)

    def criteria(self, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per model: (model selection value, higher is better; decision threshold)."""
        m = z.shape[0]
        thresholds = np.full(m, self.default_threshold)
        if self.selection == "loss":
            return -self.objective_values(z, y), thresholds
        values = np.zeros(m)
        scores = self.scores(z)
        limit = self.hp["num_calibration_samples"]
        if limit != AUTO and scores.shape[1] > limit:
            idx = np.random.default_rng(0).choice(scores.shape[1], limit, replace=False)
            scores, y = scores[:, idx], y[idx]
        for i in range(m):
            thresholds[i], values[i] = calibrate(
                scores[i],
                y,
                self.selection,
                self.default_threshold,
                self.hp["f_beta"],
                self.hp["target_recall"],
                self.hp["target_precision"],
            )
        return values, thresholds

    def run(self) -> tuple[LinearModel, Candidate]:
        """Train every model for up to ``epochs`` passes; the best epoch of each is kept."""
        hp, host = self.hp, self.host
        X, y = self._norm_x(self.train.features), self._norm_y(self.train.labels)
        n, d = X.shape
        m, k = len(self.models), self.k
        batch = min(hp["mini_batch_size"], n)
        if hp["mini_batch_size"] > n:
            log(
                f"mini_batch_size {hp['mini_batch_size']} is larger than the {n} training records; using {n}",
                "WARNING",
            )
        if hp["init_method"] == "uniform":
            W = self.rng.uniform(-hp["init_scale"], hp["init_scale"], size=(m, d, k))
        else:
            W = self.rng.normal(0.0, hp["init_sigma"], size=(m, d, k))
        b = np.full((m, k), float(hp["init_bias"]) if hp["use_bias"] else 0.0)
        optimizer = Optimizer(self.optimizer, hp, self.models, self.schedule, W.shape, b.shape)
        sample_weights = np.stack([self._weights(self.train.labels, c) for c in self.models])  # (m, n)
        params = self.params.scaled(self.scaler.label_scale) if self.kind == "regressor" else self.params
        loss_scale = (
            self.scaler.label_scale ** _SCALE_POWER.get(self.loss, 1) if self.kind == "regressor" else 1
        )
        best_value = np.full(m, -np.inf)
        best_W, best_b = W.copy(), b.copy()
        since = np.zeros(m, dtype=np.int64)
        epochs, overall_best, stale = hp["epochs"], -np.inf, 0
        for epoch in range(epochs):
            started = time.time()
            order = self.rng.permutation(n)
            loss_sum, weight_sum = np.zeros(m), np.zeros(m)
            for start in range(0, n, batch):
                idx = order[start : start + batch]
                Xb, sw = X[idx], sample_weights[:, idx]
                values, grad = loss_and_grad(self.loss, np.matmul(Xb, W) + b[:, None, :], y[idx], params)
                total = sw.sum(axis=1)
                loss_sum += (values * sw).sum(axis=1)
                weight_sum += total
                grad = grad * (sw / np.maximum(total, 1e-12)[:, None])[:, :, None]
                optimizer.step(W, b, np.matmul(Xb.T, grad), grad.sum(axis=1))
            elapsed = max(time.time() - started, 1e-9)
            dead = np.asarray(~(np.isfinite(W).all(axis=(1, 2)) & np.isfinite(b).all(axis=1)))
            if dead.any():  # a learning rate too large for the data: freeze those models at their best
                W[dead], b[dead] = best_W[dead], best_b[dead]
                optimizer.freeze(dead)
                log(
                    f"{int(dead.sum())} model(s) diverged at epoch {epoch}; keeping their best epoch",
                    "WARNING",
                )
            train_objective = loss_sum / np.maximum(weight_sum, 1e-12) * loss_scale
            value, val_objective = self._epoch_criteria(W, b, train_objective)
            leader = int(np.argmax(np.maximum(value, best_value)))
            self._report_epoch(epoch, leader, value, train_objective, val_objective)
            improved = value > best_value
            relative = (value - best_value) / np.maximum(np.abs(best_value), 1e-12)
            significant = improved & (~np.isfinite(best_value) | (relative > hp["early_stopping_tolerance"]))
            best_W[improved], best_b[improved] = W[improved], b[improved]
            best_value = np.where(improved, value, best_value)
            since = np.where(significant, 0, since + 1)
            if best_value.max() > overall_best:
                overall_best, stale = float(best_value.max()), 0
                log(f"Epoch {epoch}: Loss improved. Updating best model")
            else:
                stale += 1
                log(f"Epoch {epoch}: Loss has not improved for {stale} epochs.")
            log(f"#progress_metric: host={host}, completed {_percent(epoch + 1, epochs)} % of epochs")
            log(f"#throughput_metric: host={host}, train throughput={_fmt(n / elapsed)} records/second")
            if epoch + 1 < epochs and np.all(since >= hp["early_stopping_patience"]):
                log(f"Early stop condition met. Stopping training after epoch {epoch}.")
                break
        return self.select(best_W, best_b)

    def _epoch_criteria(
        self, W: np.ndarray, b: np.ndarray, train_objective: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Early stopping's value per model (higher is better) and the validation objective: the
        selection criteria (binary) or the loss on validation data, else the training loss."""
        if self.validation is None:
            value, val_objective = -train_objective, None
        else:
            z = self.raw_outputs(W, b, self.validation.features)
            val_objective = self.objective_values(z, self.validation.labels)
            value = (
                -val_objective if self.selection == "loss" else self.criteria(z, self.validation.labels)[0]
            )
        return np.where(np.isfinite(value), value, -np.inf), val_objective

    def _report_epoch(
        self,
        epoch: int,
        leader: int,
        value: np.ndarray,
        train_objective: np.ndarray,
        val_objective: np.ndarray | None,
    ) -> None:
        host, objective = self.host, self.objective
        prefix = f"#quality_metric: host={host}, epoch={epoch}"
        log(f"{prefix}, train {objective} <loss>={_fmt(train_objective[leader])}")
        if val_objective is not None:
            log(f"{prefix}, validation {objective} <loss>={_fmt(val_objective[leader])}")
        if self.validation is not None and self.selection != "loss":
            name, shown = f"sampled_{self.selection}", value[leader]
        else:
            name, shown = objective, -value[leader]
        stopping = f"#early_stopping_criteria_metric: host={host}, epoch={epoch}"
        log(f"{stopping}, criteria={name}, value={_fmt(shown)}")

    def select(self, W: np.ndarray, b: np.ndarray) -> tuple[LinearModel, Candidate]:
        """The best of the models by the selection criteria on validation data (or training data)."""
        calibration = self.validation or self.train
        z = self.raw_outputs(W, b, calibration.features)
        values, thresholds = self.criteria(z, calibration.labels)
        values = np.where(np.isfinite(values), values, -np.inf)
        chosen = int(np.argmax(values))
        raw_w, raw_b = self.fold(W[chosen], b[chosen])
        candidate = self.models[chosen]
        description = candidate.describe(self.hp, self.optimizer, self.schedule)
        log(f"Best model found for hyperparameters: {json.dumps(description)}")
        model = LinearModel(
            predictor_type=self.kind,
            loss=self.loss,
            weights=raw_w,
            bias=raw_b,
            threshold=float(thresholds[chosen]) if self.kind == "binary_classifier" else 0.5,
            num_classes=self.hp["num_classes"] if self.kind == "multiclass_classifier" else None,
            info={"selected_model": description, "num_models": len(self.models)},
        )
        return model, candidate


def _percent(done: int, total: int) -> str:
    value = 100.0 * done / total
    return str(int(value)) if value.is_integer() else f"{value:.4g}"


def evaluate(model: LinearModel, data: Dataset, hp: dict[str, Any]) -> dict[str, float]:
    """The channel's final metrics: the objective first, then the predictor type's scores."""
    z = model.outputs(data.features)
    params = LossParams(hp["margin"], hp["quantile"], hp["loss_insensitivity"], hp["huber_delta"])
    values, _ = loss_and_grad(model.loss, z, data.labels, params)
    metrics = {OBJECTIVE_NAMES[model.loss]: float(values.mean())}
    scores, _labels = model.predict(data.features)
    if model.predictor_type == "binary_classifier":
        metrics.update(binary_metrics(scores, data.labels, model.threshold, hp["f_beta"]))
    elif model.predictor_type == "multiclass_classifier":
        metrics.update(multiclass_metrics(scores, data.labels, hp["accuracy_top_k"], hp["f_beta"]))
    else:
        metrics.update(regression_metrics(scores, data.labels))
    return metrics


def report(channel: str, metrics: dict[str, float], host: str) -> None:
    """``#<channel>_score`` lines, then ``#quality_metric`` lines, as the real algorithm prints them."""
    finite = {name: value for name, value in metrics.items() if math.isfinite(value)}
    if channel != "train":
        for name, value in finite.items():
            log(f"#{channel}_score ({host}) : ({name!r}, {_fmt(value)})")
    for name, value in finite.items():
        kind = "loss" if name.endswith("_objective") or name in ("mse", "absolute_loss") else "score"
        log(f"#quality_metric: host={host}, {channel} {name} <{kind}>={_fmt(value)}")


# -- the job ---------------------------------------------------------------------------------------


def _read_json(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text() or "null") or default
    except ValueError as exc:
        raise ClientError(f"Unable to parse {path}: {exc}") from None


def train(base: Path) -> LinearModel:
    config = base / "input" / "config"
    host = _host(base)
    raw = _read_json(config / "hyperparameters.json", {})
    if not isinstance(raw, dict):
        raise ClientError("hyperparameters.json must hold a JSON object")
    hp = parse_hyperparameters(raw)
    log(f"Hyperparameters: {json.dumps({k: v for k, v in hp.items() if v is not None}, sort_keys=True)}")
    channels_config = _read_json(config / "inputdataconfig.json", {})
    if not isinstance(channels_config, dict):
        raise ClientError("inputdataconfig.json must hold a JSON object")
    unexpected = sorted(set(channels_config) - set(CHANNELS))
    if unexpected:
        raise ClientError(
            f"Channel {unexpected[0]!r} is not supported by this algorithm; channels: train (required), "
            "validation, test (caused by ValidationError)"
        )
    feature_dim = None if hp["feature_dim"] == AUTO else int(hp["feature_dim"])
    data: dict[str, Dataset] = {}
    for channel in CHANNELS:
        root = base / "input" / "data" / channel
        content_type = (channels_config.get(channel) or {}).get("ContentType")
        if channel not in channels_config and not root.exists():
            continue
        dataset = read_channel(channel, root, content_type, feature_dim)
        if dataset is None or dataset.size == 0:
            if channel == "train":
                raise ClientError(f"No training data found in the 'train' channel ({root})")
            log(f"Channel '{channel}' has no data; ignoring it", "WARNING")
            continue
        check_labels(dataset, hp["predictor_type"], hp["num_classes"])
        data[channel] = dataset
        log(f"Channel '{channel}': {dataset.size} records with {dataset.features.shape[1]} features")
    if "train" not in data:
        raise ClientError(
            f"No training data found in the 'train' channel ({base / 'input' / 'data' / 'train'})"
        )
    dims = {name: ds.features.shape[1] for name, ds in data.items()}
    expected = feature_dim if feature_dim is not None else dims["train"]
    for name, dim in dims.items():
        if dim != expected:
            source = (
                f"feature_dim ({expected})" if feature_dim is not None else f"the train channel ({expected})"
            )
            raise ClientError(
                f"The number of features in the '{name}' channel ({dim}) does not match {source}"
            )
    trainer = Trainer(hp, data["train"], data.get("validation"), host)
    log(
        f"Training {len(trainer.models)} model(s) in parallel with optimizer {trainer.optimizer}, "
        f"loss {hp['loss']}, mini_batch_size {min(hp['mini_batch_size'], data['train'].size)}"
    )
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # diverging models are handled
        model, _candidate = trainer.run()
    if "validation" in data:
        report("validation", evaluate(model, data["validation"], hp), host)
    else:
        report("train", evaluate(model, data["train"], hp), host)
    if "test" in data:
        report("test", evaluate(model, data["test"], hp), host)
    else:
        log("Test data is not provided.")
    model_dir = base / "model"
    model.save(model_dir)
    model.save_onnx(model_dir / ONNX_FILE)
    log(f"Saved the model to {model_dir / MODEL_FILE} and {model_dir / ONNX_FILE}")
    return model


def _write_failure(base: Path, message: str) -> None:
    try:
        output = base / "output"
        output.mkdir(parents=True, exist_ok=True)
        (output / "failure").write_text(message)
    except OSError as exc:  # pragma: no cover - nothing more to do
        print(f"Unable to write the failure file: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``train`` entry point: 0 on success; otherwise 1 (ClientError) or 2 (AlgorithmError)
    with the reason in ``<base>/output/failure``."""
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    try:
        train(base)
        return 0
    except ClientError as exc:
        message = f"ClientError: {exc}"
        log(message, "ERROR")
        _write_failure(base, message)
        return 1
    except Exception as exc:  # noqa: BLE001 - every failure must reach output/failure
        message = f"AlgorithmError: {type(exc).__name__}: {exc}"
        log(message + "\n" + traceback.format_exc(), "ERROR")
        _write_failure(base, message)
        return 2
