"""The event-stream encoder, decoded by botocore: its message parser and the real client.

The client test runs boto3's ``sagemaker-runtime`` client against a small HTTP server on
127.0.0.1 (a thread in this process) that answers ``InvokeEndpointWithResponseStream`` with
frames from :mod:`homeport.hosting.eventstream`, so botocore's own response parsing (the
``ResponseStream`` shape of the service model) reads them.
"""

from __future__ import annotations

import json
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer, EventStreamMessage
from botocore.exceptions import EventStreamError

from homeport.hosting import eventstream


def decode(data: bytes) -> list[EventStreamMessage]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_payload_part_layout_and_checksums() -> None:
    data = b"\x00\xffsome bytes\r\n"
    message = eventstream.payload_part(data)
    total, headers_length, prelude_crc = struct.unpack(">III", message[:12])
    assert total == len(message)
    assert prelude_crc == zlib.crc32(message[:8])
    assert struct.unpack(">I", message[-4:])[0] == zlib.crc32(message[:-4])
    assert message[12 + headers_length : -4] == data

    (decoded,) = decode(message)
    assert decoded.headers == {
        ":event-type": "PayloadPart",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }
    assert decoded.payload == data
    assert decoded.to_response_dict()["status_code"] == 200


def test_empty_payload_and_many_messages_back_to_back() -> None:
    chunks = [b"", b"a", bytes(range(256)) * 40, "ünïcode".encode()]
    messages = decode(b"".join(eventstream.payload_part(c) for c in chunks))
    assert [m.payload for m in messages] == chunks


def test_corruption_is_detected() -> None:
    message = bytearray(eventstream.payload_part(b"payload"))
    message[-6] ^= 0x01  # a payload byte
    with pytest.raises(ChecksumMismatch):
        decode(bytes(message))


def test_large_data_is_split_into_parts_botocore_accepts() -> None:
    data = bytes(range(256)) * ((eventstream.MAX_PART + 1000) // 256 + 1)
    messages = decode(eventstream.payload_part(data))
    assert len(messages) == 2
    assert b"".join(m.payload for m in messages) == data


def test_model_stream_error_message() -> None:
    (decoded,) = decode(eventstream.model_stream_error("the model fell over", "ModelError"))
    assert decoded.headers == {
        ":exception-type": "ModelStreamError",
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    assert json.loads(decoded.payload) == {"Message": "the model fell over", "ErrorCode": "ModelError"}
    assert decoded.to_response_dict()["status_code"] == 400

    (failure,) = decode(eventstream.internal_stream_failure("oops"))
    assert failure.headers[":exception-type"] == "InternalStreamFailure"
    assert json.loads(failure.payload) == {"Message": "oops"}


def test_header_limits() -> None:
    with pytest.raises(ValueError):
        eventstream.encode_headers([("x" * 256, "v")])
    with pytest.raises(ValueError):
        eventstream.encode_headers([("x", "v" * 65536)])


# -- the real client ----------------------------------------------------------------------------


class _StreamHandler(BaseHTTPRequestHandler):
    frames: list[bytes] = []

    def log_message(self, format: str, *args: object) -> None:  # keep pytest's output clean
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Amzn-Invoked-Production-Variant", "variant-1")
        self.send_header("X-Amzn-SageMaker-Content-Type", "text/plain")
        self.end_headers()
        for frame in self.frames:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def runtime_client() -> Iterator[tuple[Any, type[_StreamHandler]]]:
    handler = type("Handler", (_StreamHandler,), {"frames": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = boto3.session.Session().client(
        "sagemaker-runtime",
        endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        yield client, handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_botocore_client_reads_payload_parts(runtime_client: tuple[Any, type[_StreamHandler]]) -> None:
    client, handler = runtime_client
    chunks = [b'{"token": "Hel', b'lo"}', b"\x00\x01binary", b"x" * 70_000]
    handler.frames = [eventstream.payload_part(c) for c in chunks]
    response = client.invoke_endpoint_with_response_stream(EndpointName="ep", Body=b"{}")
    assert response["InvokedProductionVariant"] == "variant-1"
    assert response["ContentType"] == "text/plain"
    events = list(response["Body"])
    assert events == [{"PayloadPart": {"Bytes": c}} for c in chunks]


def test_botocore_client_raises_model_stream_error(
    runtime_client: tuple[Any, type[_StreamHandler]],
) -> None:
    client, handler = runtime_client
    handler.frames = [
        eventstream.payload_part(b"partial"),
        eventstream.model_stream_error("boom", "ModelError"),
    ]
    response = client.invoke_endpoint_with_response_stream(EndpointName="ep", Body=b"{}")
    stream = iter(response["Body"])
    assert next(stream) == {"PayloadPart": {"Bytes": b"partial"}}
    with pytest.raises(EventStreamError) as caught:
        next(stream)
    assert caught.value.response["Error"] == {"Code": "ModelStreamError", "Message": "boom"}
