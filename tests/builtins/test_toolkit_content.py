"""Default decoders and encoders of homeport_toolkit (sagemaker-inference's, numpy-based)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from homeport_toolkit import content
from homeport_toolkit.errors import BadRequest, NotAcceptable, UnsupportedContentType


def test_csv_one_row_is_a_2d_float_array() -> None:
    array = content.decode("5.1,3.5,1.4,0.2", "text/csv")
    assert array.shape == (1, 4)
    assert array.dtype == np.float64
    assert array.tolist() == [[5.1, 3.5, 1.4, 0.2]]


def test_csv_rows_trailing_newline_blank_lines_and_parameters() -> None:
    array = content.decode("1,2\n3,4\n\n5,6\n", "text/csv; charset=utf-8")
    assert array.tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    assert content.decode(b"7,8\r\n9,10\r\n", "TEXT/CSV").tolist() == [[7.0, 8.0], [9.0, 10.0]]


def test_csv_general_path_quotes_empty_and_text() -> None:
    numbers = content.decode('"1.5",2\n3,', "text/csv")
    assert numbers.dtype == np.float64
    assert numbers[0].tolist() == [1.5, 2.0]
    assert numbers[1, 0] == 3.0 and np.isnan(numbers[1, 1])
    mixed = content.decode('a,"b,c",3\n', "text/csv")
    assert mixed.dtype == object
    assert mixed.tolist() == [["a", "b,c", 3.0]]


def test_csv_ragged_or_empty_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="same number of fields"):
        content.decode("1,2\n3\n", "text/csv")
    with pytest.raises(BadRequest, match="no rows"):
        content.decode("\n \n", "text/csv")


def test_json_decoding() -> None:
    assert content.decode("[[1, 2], [3, 4]]", "application/json").tolist() == [[1, 2], [3, 4]]
    assert content.decode(b'{"instances": [1]}', "application/json") == {"instances": [1]}
    with pytest.raises(BadRequest, match="not valid JSON"):
        content.decode("[1,", "application/json")


def test_npy_round_trip_and_pickles_refused() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    body = content.encode(array, "application/x-npy")
    decoded = content.decode(body, "application/x-npy")
    assert decoded.dtype == np.float32 and np.array_equal(decoded, array)
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BadRequest, match="pickles are refused"):
        content.decode(buffer.getvalue(), "application/x-npy")


def test_npz_decoding() -> None:
    one, many = io.BytesIO(), io.BytesIO()
    np.savez(one, x=np.array([1, 2, 3]))
    np.savez(many, a=np.array([1]), b=np.array([2.5]))
    assert content.decode(one.getvalue(), "application/x-npz").tolist() == [1, 2, 3]
    decoded = content.decode(many.getvalue(), "application/x-npz")
    assert sorted(decoded) == ["a", "b"] and decoded["b"].tolist() == [2.5]


def test_unsupported_content_type() -> None:
    with pytest.raises(UnsupportedContentType) as info:
        content.decode(b"x", "text/plain")
    assert info.value.status_code == 415
    assert "text/plain" in info.value.message
    with pytest.raises(UnsupportedContentType):
        content.decode(b"x", None)


def test_json_encoding_of_arrays_and_numpy_scalars() -> None:
    assert json.loads(content.encode(np.array(["setosa", "virginica"]), "application/json")) == [
        "setosa",
        "virginica",
    ]
    nested = {"scores": np.array([0.25, 0.75]), "label": np.int64(1)}
    assert json.loads(content.encode(nested, "application/json")) == {"scores": [0.25, 0.75], "label": 1}


def test_csv_encoding_matches_savetxt() -> None:
    for value in (np.array([1.5, 2.0]), np.array([[1, 2], [3, 4]]), np.array(["setosa"])):
        expected = io.StringIO()
        np.savetxt(expected, value, delimiter=",", fmt="%s")
        assert content.encode(value, "text/csv").decode() == expected.getvalue()
    assert content.encode(np.float64(0.5), "text/csv") == b"0.5\n"
    assert content.encode([[1, 2]], "text/csv") == b"1,2\n"


def test_round_trips_json_and_csv() -> None:
    array = np.array([[0.5, 1.25], [2.0, -3.0]])
    for media in ("application/json", "text/csv"):
        assert np.array_equal(content.decode(content.encode(array, media), media), array)


def test_accept_negotiation() -> None:
    assert content.encode_for_accept(np.array([1]), "text/csv") == (b"1\n", "text/csv")
    assert (
        content.encode_for_accept(np.array([1]), "text/html, application/json;q=0.9")[1] == "application/json"
    )
    assert content.encode_for_accept(np.array([1]), "image/png, */*")[1] == "application/json"
    with pytest.raises(NotAcceptable) as info:
        content.encode_for_accept(np.array([1]), "image/png")
    assert info.value.status_code == 406
