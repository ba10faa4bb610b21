"""line_batches (the Line + MultiRecord fast path) gives exactly the batches of the general path."""

from __future__ import annotations

import io
import random

import pytest

from homeport.transform.records import Batch, RecordTooLarge, batches, line_batches, split_records


def general(data: bytes, limit: int) -> list[Batch]:
    return list(batches(split_records(io.BytesIO(data), "Line"), "MultiRecord", limit, split_type="Line"))


@pytest.mark.parametrize("seed", range(40))
def test_same_batches_as_split_and_pack(seed: int) -> None:
    rng = random.Random(seed)
    lines = [b"x" * rng.randint(0, 40) for _ in range(rng.randint(0, 300))]
    data = b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")
    limit = rng.randint(41, 400)
    assert list(line_batches(io.BytesIO(data), limit)) == general(data, limit)


def test_exact_fit_and_one_over() -> None:
    data = b"aaa\nbbb\n"  # 8 bytes
    assert [b.data for b in line_batches(io.BytesIO(data), 8)] == [b"aaa\nbbb\n"]
    assert [(b.data, b.count, b.first) for b in line_batches(io.BytesIO(data), 7)] == [
        (b"aaa\n", 1, 0),
        (b"bbb\n", 1, 1),
    ]


def test_a_line_over_the_limit_is_refused_naming_it() -> None:
    data = b"ok\n" + b"y" * 20 + b"\nok\n"
    with pytest.raises(RecordTooLarge) as exc:
        list(line_batches(io.BytesIO(data), 10, uri="s3://b/k"))
    assert exc.value.number == 2 and "s3://b/k" in str(exc.value)
    with pytest.raises(RecordTooLarge):
        general(data, 10)


def test_blank_lines_and_missing_final_newline_count_as_records() -> None:
    data = b"a\n\n\nb"
    result = list(line_batches(io.BytesIO(data), 100))
    assert result == general(data, 100)
    assert result[0].count == 4 and result[0].data == b"a\n\n\nb\n"


def test_empty_input_gives_no_batches() -> None:
    assert list(line_batches(io.BytesIO(b""), 10)) == general(b"", 10) == []
