"""Content types, and the default decoders and encoders (numpy), as in sagemaker-inference.

Decoders (request body → object for ``predict_fn``):

* ``application/json`` → ``numpy.array(json.loads(body))`` (a JSON object stays a dict);
* ``text/csv`` → a 2-D float array, one row per line (a single line is one row). Plain numeric
  CSV takes a fast path (``str.split`` + ``float``, ~1.5 µs for one iris row; pandas costs
  ~3 ms, ``numpy.genfromtxt`` ~30 µs); quoted or non-numeric fields fall back to the ``csv``
  module, giving an object array when a field is not a number (empty fields are NaN);
* ``application/x-npy`` → ``numpy.load`` (pickled object arrays are refused);
* ``application/x-npz`` → a scipy sparse matrix when the archive is one (and scipy is
  installed), else the only array in it, else a dict of arrays.

Encoders (prediction → response body): ``application/json``, ``text/csv`` (one line per row,
like ``numpy.savetxt(fmt="%s")``), ``application/x-npy``.

Bodies of ``application/json`` and ``text/csv`` reach ``input_fn`` already decoded to ``str``;
others stay ``bytes``. Media types are matched without their parameters, case-insensitively.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np

from .errors import BadRequest, InferenceError, NotAcceptable, UnsupportedContentType

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
NPZ = "application/x-npz"
OCTET_STREAM = "application/octet-stream"
ANY = "*/*"
UTF8_TYPES = frozenset((JSON, CSV))
DECODABLE = frozenset((JSON, CSV, NPY, NPZ))
ENCODABLE = (JSON, CSV, NPY)


def media_type(content_type: str | None) -> str:
    """``text/csv; charset=utf-8`` → ``text/csv``; None → ''."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def parse_accept(accept: str) -> list[str]:
    """The media types an Accept header lists, in order, without parameters (q-values ignored)."""
    return [m for m in (media_type(part) for part in accept.split(",")) if m]


# -- decoders ----------------------------------------------------------------------------------


def _text(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not valid UTF-8: {exc}") from None


def _bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def json_to_array(data: str | bytes) -> Any:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if isinstance(value, dict):
        return value
    return np.array(value)


def _cell(value: str) -> float | str:
    text = value.strip()
    if not text:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        return value


def csv_to_array(data: str | bytes) -> np.ndarray:
    """A 2-D array: one row per non-blank line."""
    text = _text(data)
    lines = [line for line in text.splitlines() if line and not line.isspace()]
    if not lines:
        raise BadRequest("the CSV body has no rows")
    if '"' not in text:
        try:
            return np.array([[float(v) for v in line.split(",")] for line in lines], dtype=np.float64)
        except ValueError:
            pass  # a non-numeric or empty field, or ragged rows: the general path says which
    rows = [[_cell(v) for v in row] for row in csv.reader(lines)]
    width = len(rows[0])
    if any(len(row) != width for row in rows):
        raise BadRequest("the CSV rows do not all have the same number of fields")
    if all(isinstance(v, float) for row in rows for v in row):
        return np.array(rows, dtype=np.float64)
    return np.array(rows, dtype=object)


def npy_to_array(data: str | bytes) -> np.ndarray:
    try:
        return np.asarray(np.load(io.BytesIO(_bytes(data)), allow_pickle=False))
    except ValueError as exc:
        raise BadRequest(f"the body is not a readable .npy array (pickles are refused): {exc}") from None


def npz_to_object(data: str | bytes) -> Any:
    raw = _bytes(data)
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError) as exc:
        raise BadRequest(f"the body is not a readable .npz archive: {exc}") from None
    if {"format", "shape", "data"} <= arrays.keys():
        try:
            import scipy.sparse

            return scipy.sparse.load_npz(io.BytesIO(raw))
        except ImportError:
            pass
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    return arrays


_DECODERS = {JSON: json_to_array, CSV: csv_to_array, NPY: npy_to_array, NPZ: npz_to_object}


def decode(data: str | bytes, content_type: str | None) -> Any:
    """The default ``input_fn``: decode a body of one of the default content types."""
    decoder = _DECODERS.get(media_type(content_type))
    if decoder is None:
        raise UnsupportedContentType(content_type)
    return decoder(data)


# -- encoders ----------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def array_to_json(value: Any) -> bytes:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    try:
        return json.dumps(value, default=_json_default).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InferenceError(f"the prediction cannot be encoded as JSON: {exc}") from None


def _line(row: Any) -> str:
    if isinstance(row, list):
        return ",".join(map(str, row))
    return str(row)


def array_to_csv(value: Any) -> bytes:
    """One line per element of a 1-D array, one line per row of a 2-D one (``numpy.savetxt``)."""
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.ndim > 2:
        raise InferenceError(f"a {array.ndim}-D prediction cannot be encoded as CSV")
    if array.ndim == 0:
        return (str(array.item()) + "\n").encode("utf-8")
    return ("\n".join(map(_line, array.tolist())) + "\n").encode("utf-8")


def array_to_npy(value: Any) -> bytes:
    buffer = io.BytesIO()
    try:
        np.save(buffer, np.asarray(value), allow_pickle=False)
    except ValueError as exc:
        raise InferenceError(f"the prediction cannot be encoded as .npy: {exc}") from None
    return buffer.getvalue()


_ENCODERS = {JSON: array_to_json, CSV: array_to_csv, NPY: array_to_npy}


def encode(value: Any, content_type: str) -> bytes:
    """Encode ``value`` as one of the default content types."""
    encoder = _ENCODERS.get(media_type(content_type))
    if encoder is None:
        raise NotAcceptable(content_type)
    return encoder(value)


def negotiate(accept: str) -> str | None:
    """The first type in ``accept`` that a default encoder produces (``*/*`` in a list → JSON)."""
    for candidate in parse_accept(accept):
        if candidate in _ENCODERS:
            return candidate
        if candidate == ANY:
            return JSON
    return None


def encode_for_accept(value: Any, accept: str) -> tuple[bytes, str]:
    """The default ``output_fn``: the body and its content type, for the first acceptable type."""
    chosen = negotiate(accept)
    if chosen is None:
        raise NotAcceptable(accept)
    return _ENCODERS[chosen](value), chosen


def to_body(value: Any) -> bytes:
    """What a handler returned as the response body, as bytes (str as UTF-8; other objects as JSON)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return array_to_json(value)
