"""The S3 API at the ASGI level: routing by signing service, S3's XML, every operation's edge
cases, aws-chunked bodies, and the local store features it stands on (listing with delimiters
and markers, attributes, multipart uploads, bucket deletion).

Live clients (boto3, the AWS CLI) against a real server are in tests/e2e/test_s3_api.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import itertools
import random
import warnings
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

with warnings.catch_warnings():  # starlette's note that httpx2 is preferred: either works here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from homeport.api.s3.app import build_s3_app, with_s3
from homeport.api.s3.payload import AwsChunkedDecoder
from homeport.api.sigv4 import signing_service
from homeport.storage.base import (
    BucketNotEmpty,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    NoSuchBucket,
    NoSuchUpload,
    ObjectAttributes,
    ObjectInfo,
    S3Uri,
)
from homeport.storage.local import RESERVED, LocalObjectStore, multipart_etag

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
S3_AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"
)
SM_AUTH = S3_AUTH.replace("/s3/", "/sagemaker/")
MIN_PART = 1024


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path / "objects")
    store.min_part_size = MIN_PART  # small parts keep the multipart tests fast
    return store


@pytest.fixture
def client(store: LocalObjectStore) -> Iterator[TestClient]:
    with TestClient(build_s3_app(store, "us-east-1"), raise_server_exceptions=True) as c:
        yield c


@pytest.fixture
def bucket(client: TestClient) -> str:
    assert client.put("/bkt").status_code == 200
    return "bkt"


def xml_of(response: Any) -> ET.Element:
    return ET.fromstring(response.content)


def find(root: ET.Element, path: str) -> str | None:
    return root.findtext(_ns(path))


def _ns(path: str) -> str:
    return "/".join(NS + part for part in path.split("/"))


def findall(root: ET.Element, path: str) -> list[ET.Element]:
    return root.findall(_ns(path))


def error_code(response: Any) -> str:
    root = xml_of(response)
    assert root.tag == "Error"
    return root.findtext("Code") or ""


# -- signing service and dispatch ------------------------------------------------------------


def scope_with(auth: str | None = None, query: bytes = b"") -> dict[str, Any]:
    headers = [(b"host", b"localhost")]
    if auth is not None:
        headers.append((b"authorization", auth.encode()))
    return {"type": "http", "headers": headers, "query_string": query}


def test_signing_service_reads_the_credential_scope() -> None:
    assert signing_service(scope_with(S3_AUTH)) == "s3"
    assert signing_service(scope_with(SM_AUTH)) == "sagemaker"
    sigv4a = (
        "AWS4-ECDSA-P256-SHA256 Credential=AKID/20240101/s3/aws4_request, SignedHeaders=host, Signature=1"
    )
    assert signing_service(scope_with(sigv4a)) == "s3"
    presigned = (
        b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"
    )
    assert signing_service(scope_with(query=presigned)) == "s3"
    assert signing_service(scope_with("AWS AKID:c2lnbmF0dXJl")) == "s3"  # SigV2: only S3 speaks it
    assert signing_service(scope_with(query=b"AWSAccessKeyId=AKID&Expires=1&Signature=x")) == "s3"
    assert signing_service(scope_with()) is None
    assert signing_service(scope_with("Bearer token")) is None
    assert signing_service(scope_with("AWS4-HMAC-SHA256 SignedHeaders=host")) is None


def test_with_s3_sends_s3_requests_to_the_s3_app_and_the_rest_to_the_app() -> None:
    seen: list[tuple[str, str]] = []

    def recorder(name: str) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append((name, scope["type"]))

        return app

    dispatch = with_s3(recorder("app"), recorder("s3"))

    async def nothing() -> dict[str, Any]:
        return {}

    async def ignore(_: Any) -> None:
        return None

    async def run_all() -> None:
        await dispatch(scope_with(S3_AUTH), nothing, ignore)
        await dispatch(scope_with(SM_AUTH), nothing, ignore)
        await dispatch(scope_with(), nothing, ignore)
        await dispatch({"type": "lifespan"}, nothing, ignore)

    asyncio.run(run_all())
    assert seen == [("s3", "http"), ("app", "http"), ("app", "http"), ("app", "lifespan")]


# -- errors and routing ----------------------------------------------------------------------


def test_errors_are_s3_xml_with_request_id(client: TestClient, bucket: str) -> None:
    response = client.get("/bkt/missing/key.txt")
    assert response.status_code == 404
    root = xml_of(response)
    assert root.findtext("Code") == "NoSuchKey"
    assert root.findtext("Message") == "The specified key does not exist."
    assert root.findtext("Key") == "missing/key.txt"
    assert root.findtext("BucketName") == "bkt"
    assert root.findtext("RequestId") == response.headers["x-amz-request-id"]
    assert response.headers["content-length"] == str(len(response.content))
    head = client.head("/bkt/missing/key.txt")
    assert head.status_code == 404 and head.content == b""
    assert error_code(client.get("/nobucket/k")) == "NoSuchBucket"
    assert client.get("/nobucket/k").status_code == 404
    assert client.head("/nobucket").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/bkt?acl", 501, "NotImplemented"),
        ("PUT", "/bkt/k?tagging", 501, "NotImplemented"),
        ("GET", "/bkt?versioning", 501, "NotImplemented"),
        ("POST", "/bkt", 501, "NotImplemented"),
        ("POST", "/bkt/k", 501, "NotImplemented"),
        ("PATCH", "/bkt/k", 405, "MethodNotAllowed"),
        ("DELETE", "/", 405, "MethodNotAllowed"),
    ],
)
def test_unsupported_operations_are_named(
    client: TestClient, bucket: str, method: str, path: str, status: int, code: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert error_code(response) == code
    if code == "NotImplemented":
        assert "not implemented by Homeport" in (xml_of(response).findtext("Message") or "")


# -- buckets ---------------------------------------------------------------------------------


def test_bucket_lifecycle(client: TestClient, store: LocalObjectStore) -> None:
    body = (
        b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>"
    )
    created = client.put("/first", content=body)
    assert created.status_code == 200 and created.headers["location"] == "/first"
    assert client.put("/second").status_code == 200
    again = client.put("/first")
    assert again.status_code == 409 and error_code(again) == "BucketAlreadyOwnedByYou"
    for bad in ["Upper", "ab", "a_b", "-ab", "192.168.1.1", "a..b", "x" * 64]:
        response = client.put(f"/{bad}")
        assert response.status_code == 400 and error_code(response) == "InvalidBucketName", bad
    assert error_code(client.put("/bad-body", content=b"<nope")) == "MalformedXML"

    listed = xml_of(client.get("/"))
    assert listed.tag == f"{NS}ListAllMyBucketsResult"
    assert [b.findtext(f"{NS}Name") for b in findall(listed, "Buckets/Bucket")] == ["first", "second"]
    assert find(listed, "Owner/DisplayName") == "homeport"
    assert (find(listed, "Buckets/Bucket/CreationDate") or "").endswith("Z")
    page = xml_of(client.get("/?max-buckets=1"))
    assert [b.findtext(f"{NS}Name") for b in findall(page, "Buckets/Bucket")] == ["first"]
    token = find(page, "ContinuationToken")
    rest = xml_of(client.get(f"/?max-buckets=1&continuation-token={token}"))
    assert [b.findtext(f"{NS}Name") for b in findall(rest, "Buckets/Bucket")] == ["second"]

    head = client.head("/first")
    assert head.status_code == 200 and head.headers["x-amz-bucket-region"] == "us-east-1"
    location = xml_of(client.get("/first?location"))
    assert location.tag == f"{NS}LocationConstraint" and not location.text

    client.put("/first/obj", content=b"x")
    not_empty = client.delete("/first")
    assert not_empty.status_code == 409 and error_code(not_empty) == "BucketNotEmpty"
    # An in-progress upload does not keep a bucket alive (S3 aborts it with the bucket).
    client.post("/first/pending?uploads")
    assert client.delete("/first/obj").status_code == 204
    assert client.delete("/first").status_code == 204
    assert client.head("/first").status_code == 404
    missing = client.delete("/first")
    assert missing.status_code == 404 and error_code(missing) == "NoSuchBucket"
    assert sorted(p.name for p in store.root.iterdir()) == ["second"]


def test_get_bucket_location_names_a_region_other_than_us_east_1(store: LocalObjectStore) -> None:
    with TestClient(build_s3_app(store, "eu-west-1")) as client:
        client.put("/bkt")
        assert xml_of(client.get("/bkt?location")).text == "eu-west-1"


# -- objects ---------------------------------------------------------------------------------


def test_put_get_head_with_metadata(client: TestClient, bucket: str) -> None:
    data = b"hello, s3\n" * 100
    put = client.put(
        "/bkt/dir/hello.txt",
        content=data,
        headers={
            "content-type": "text/plain",
            "x-amz-meta-owner": "alice",
            "x-amz-meta-Purpose": "test",
            "cache-control": "no-cache",
            "content-md5": base64.b64encode(hashlib.md5(data).digest()).decode(),
            "x-amz-content-sha256": hashlib.sha256(data).hexdigest(),
        },
    )
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert put.headers["content-length"] == "0"
    got = client.get("/bkt/dir/hello.txt")
    assert got.content == data
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["x-amz-meta-owner"] == "alice"
    assert got.headers["x-amz-meta-purpose"] == "test"
    assert got.headers["cache-control"] == "no-cache"
    assert got.headers["etag"] == put.headers["etag"]
    assert got.headers["last-modified"].endswith(" GMT")
    assert got.headers["accept-ranges"] == "bytes"
    head = client.head("/bkt/dir/hello.txt")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["x-amz-meta-owner"] == "alice"
    # An overwrite replaces the metadata; objects written without any get S3's default type.
    client.put("/bkt/dir/hello.txt", content=b"v2")
    again = client.get("/bkt/dir/hello.txt")
    assert again.headers["content-type"] == "binary/octet-stream"
    assert "x-amz-meta-owner" not in again.headers
    overridden = client.get("/bkt/dir/hello.txt?response-content-type=application/json")
    assert overridden.headers["content-type"] == "application/json"
    assert client.get("/bkt/dir/hello.txt?versionId=null").status_code == 200
    assert error_code(client.get("/bkt/dir/hello.txt?versionId=3HL4kqtJ")) == "InvalidArgument"


def test_virtual_hosted_style(client: TestClient, bucket: str) -> None:
    assert client.put("/k.txt", content=b"v", headers={"host": "bkt.localhost:9000"}).status_code == 200
    assert client.get("/bkt/k.txt").content == b"v"
    listed = xml_of(client.get("/?list-type=2", headers={"host": "bkt.localhost"}))
    assert [c.findtext(f"{NS}Key") for c in findall(listed, "Contents")] == ["k.txt"]


def test_bad_checksums_store_nothing(client: TestClient, bucket: str, store: LocalObjectStore) -> None:
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    bad = client.put("/bkt/k", content=b"data", headers={"content-md5": wrong_md5})
    assert bad.status_code == 400 and error_code(bad) == "BadDigest"
    assert (
        error_code(client.put("/bkt/k", content=b"data", headers={"content-md5": "nope"})) == "InvalidDigest"
    )
    sha = client.put("/bkt/k", content=b"data", headers={"x-amz-content-sha256": "0" * 64})
    assert sha.status_code == 400 and error_code(sha) == "XAmzContentSHA256Mismatch"
    crc = client.put("/bkt/k", content=b"data", headers={"x-amz-checksum-crc32": "AAAAAA=="})
    assert crc.status_code == 400 and error_code(crc) == "BadDigest"
    assert client.head("/bkt/k").status_code == 404
    assert list((store.root / "bkt" / RESERVED / "tmp").iterdir()) == []
    good_crc = base64.b64encode(zlib.crc32(b"data").to_bytes(4, "big")).decode()
    ok = client.put("/bkt/k", content=b"data", headers={"x-amz-checksum-crc32": good_crc})
    assert ok.status_code == 200 and ok.headers["x-amz-checksum-crc32"] == good_crc
    unsigned = client.put("/bkt/u", content=b"u", headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    assert unsigned.status_code == 200


def test_aws_chunked_signed_body(client: TestClient, bucket: str) -> None:
    data = random.Random(1).randbytes(200_000)
    chunks = [data[:65536], data[65536:131072], data[131072:]]
    body = b"".join(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(c), b"a" * 64, c) for c in chunks)
    body += b"0;chunk-signature=" + b"b" * 64 + b"\r\n\r\n"
    response = client.put(
        "/bkt/chunked",
        content=body,
        headers={
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "content-type": "application/x-npy",
        },
    )
    assert response.status_code == 200, response.text
    got = client.get("/bkt/chunked")
    assert got.content == data
    assert "content-encoding" not in got.headers  # aws-chunked was the transfer, not the object
    assert got.headers["content-type"] == "application/x-npy"


def test_aws_chunked_trailing_crc32_as_botocore_sends_it(client: TestClient, bucket: str) -> None:
    data = random.Random(2).randbytes(3 * 1024 * 1024 + 17)

    def encoded(payload: bytes) -> bytes:
        wrapper = AwsChunkedWrapper(
            io.BytesIO(payload), Crc32Checksum, "x-amz-checksum-crc32", chunk_size=65536
        )
        return wrapper.read()

    headers = {
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "content-encoding": "aws-chunked",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(data)),
    }
    response = client.put("/bkt/trailer", content=encoded(data), headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    expected_crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert response.headers["x-amz-checksum-crc32"] == expected_crc
    assert client.get("/bkt/trailer").content == data
    # A trailer that does not match the bytes fails the upload and keeps the old object.
    corrupt = encoded(b"x" * len(data)).replace(b"x" * 100, b"y" * 100, 1)
    assert error_code(client.put("/bkt/trailer", content=corrupt, headers=headers)) == "BadDigest"
    # So does a body shorter than announced.
    short = dict(headers, **{"x-amz-decoded-content-length": str(len(data) + 1)})
    assert error_code(client.put("/bkt/trailer", content=encoded(data), headers=short)) == "IncompleteBody"
    assert client.get("/bkt/trailer").content == data


def test_aws_chunked_decoder_takes_any_slicing() -> None:
    data = random.Random(3).randbytes(10_000)
    body = AwsChunkedWrapper(io.BytesIO(data), Crc32Checksum, "x-amz-checksum-crc32", chunk_size=999).read()
    rng = random.Random(4)
    for _ in range(20):
        decoder, out, at = AwsChunkedDecoder(), bytearray(), 0
        while at < len(body):
            step = rng.randint(1, 300)
            out += decoder.feed(body[at : at + step])
            at += step
        decoder.finish()
        assert bytes(out) == data
        assert (
            decoder.trailers["x-amz-checksum-crc32"]
            == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        )


def call(
    store: LocalObjectStore, method: str, path: str, headers: dict[str, str], messages: list[dict[str, Any]]
) -> tuple[int, dict[str, str], bytes]:
    """One request straight through the ASGI app, its body delivered as the given messages."""
    app = build_s3_app(store, "us-east-1")
    inbox = list(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(app(scope, receive, send))
    if not sent:
        return 0, {}, b""
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def test_streamed_bodies_in_many_messages(store: LocalObjectStore) -> None:
    store.create_bucket("bkt")
    data = random.Random(8).randbytes(300_000)
    encoded = AwsChunkedWrapper(
        io.BytesIO(data), Crc32Checksum, "x-amz-checksum-crc32", chunk_size=8192
    ).read()
    pieces = [encoded[i : i + 777] for i in range(0, len(encoded), 777)]
    messages = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    headers = {
        "transfer-encoding": "chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "content-encoding": "aws-chunked",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(data)),
    }
    status, response_headers, _ = call(store, "PUT", "/bkt/streamed", headers, messages)
    assert status == 200 and response_headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    with store.open_read(S3Uri("bkt", "streamed")) as reader:
        assert reader.read() == data
    status, _, body = call(store, "GET", "/bkt/streamed", {}, [])
    assert status == 200 and body == data


def test_a_client_gone_mid_upload_leaves_nothing(store: LocalObjectStore) -> None:
    store.create_bucket("bkt")
    messages = [{"type": "http.request", "body": b"x" * 2_000_000, "more_body": True}]  # then: disconnect
    status, _, _ = call(store, "PUT", "/bkt/half", {"content-length": "5000000"}, messages)
    assert status == 0  # nobody to answer
    assert store.head(S3Uri("bkt", "half")) is None
    assert list((store.root / "bkt" / RESERVED / "tmp").iterdir()) == []
    status, _, body = call(store, "PUT", "/bkt/k", {}, [{"type": "http.request", "body": b"x"}])
    assert status == 411 and b"MissingContentLength" in body


@pytest.mark.parametrize(
    ("header", "status", "content", "content_range"),
    [
        ("bytes=0-3", 206, b"0123", "bytes 0-3/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-4", 206, b"6789", "bytes 6-9/10"),
        ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
        ("bytes=-100", 206, b"0123456789", "bytes 0-9/10"),
        ("bytes=3-1", 200, b"0123456789", None),  # invalid: ignored, as S3 does
        ("bytes=0-1,4-5", 200, b"0123456789", None),  # several ranges: ignored
        ("items=0-1", 200, b"0123456789", None),
    ],
)
def test_ranges(
    client: TestClient, bucket: str, header: str, status: int, content: bytes, content_range: str | None
) -> None:
    client.put("/bkt/digits", content=b"0123456789")
    response = client.get("/bkt/digits", headers={"range": header})
    assert response.status_code == status
    assert response.content == content
    assert response.headers["content-length"] == str(len(content))
    assert response.headers.get("content-range") == content_range


def test_unsatisfiable_ranges(client: TestClient, bucket: str) -> None:
    client.put("/bkt/digits", content=b"0123456789")
    client.put("/bkt/empty", content=b"")
    for path, header in [
        ("/bkt/digits", "bytes=10-"),
        ("/bkt/digits", "bytes=-0"),
        ("/bkt/empty", "bytes=0-"),
    ]:
        response = client.get(path, headers={"range": header})
        assert response.status_code == 416, header
        assert error_code(response) == "InvalidRange"
        assert response.headers["content-range"].startswith("bytes */")


def test_conditional_reads(client: TestClient, bucket: str) -> None:
    etag = client.put("/bkt/k", content=b"v").headers["etag"]
    assert client.get("/bkt/k", headers={"if-none-match": etag}).status_code == 304
    assert client.get("/bkt/k", headers={"if-none-match": '"other"'}).status_code == 200
    failed = client.get("/bkt/k", headers={"if-match": '"other"'})
    assert failed.status_code == 412 and error_code(failed) == "PreconditionFailed"
    assert client.get("/bkt/k", headers={"if-match": etag}).status_code == 200
    assert client.head("/bkt/k", headers={"if-match": '"other"'}).status_code == 412
    future, past = "Fri, 01 Jan 2100 00:00:00 GMT", "Thu, 01 Jan 1970 00:00:00 GMT"
    assert client.get("/bkt/k", headers={"if-modified-since": future}).status_code == 304
    assert client.get("/bkt/k", headers={"if-modified-since": past}).status_code == 200
    assert client.get("/bkt/k", headers={"if-unmodified-since": past}).status_code == 412
    # Conditional create: only when absent.
    assert client.put("/bkt/new", content=b"1", headers={"if-none-match": "*"}).status_code == 200
    taken = client.put("/bkt/new", content=b"2", headers={"if-none-match": "*"})
    assert taken.status_code == 412 and client.get("/bkt/new").content == b"1"


def test_keys_a_folder_cannot_hold_are_refused_and_nothing_escapes(
    client: TestClient, bucket: str, store: LocalObjectStore, tmp_path: Path
) -> None:
    # Dots are percent-encoded so that the HTTP client does not resolve them itself.
    for key in ["%2E%2E/escape", "a/%2E%2E/%2E%2E/escape", "a//b", "a/%2E/b", f"{RESERVED}/tmp/x", "dir/"]:
        response = client.put(f"/bkt/{key}", content=b"x")
        assert response.status_code == 400, key
        assert error_code(response) == "InvalidArgument"
    client.put("/bkt/file", content=b"x")
    conflict = client.put("/bkt/file/inner", content=b"x")
    assert conflict.status_code == 400 and "cannot hold" in (xml_of(conflict).findtext("Message") or "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objects"]
    assert [info.key for info in store.list(S3Uri("bkt", ""))] == ["file"]
    assert client.delete("/bkt/a//b").status_code == 204
    assert error_code(client.get("/bkt/" + "k" * 1025)) == "KeyTooLongError"


def test_delete_object_and_delete_objects(client: TestClient, bucket: str) -> None:
    for key in ["a", "b", "c/d"]:
        client.put(f"/bkt/{key}", content=b"x")
    assert client.delete("/bkt/a").status_code == 204
    assert client.delete("/bkt/a").status_code == 204  # absent: still 204
    assert client.delete("/nobucket/a").status_code == 404
    body = (
        '<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>b</Key></Object>'
        "<Object><Key>c/d</Key></Object><Object><Key>never</Key></Object></Delete>"
    )
    result = xml_of(client.post("/bkt?delete", content=body))
    assert result.tag == f"{NS}DeleteResult"
    assert [d.findtext(f"{NS}Key") for d in findall(result, "Deleted")] == ["b", "c/d", "never"]
    client.put("/bkt/e", content=b"x")
    quiet = xml_of(
        client.post(
            "/bkt?delete", content="<Delete><Quiet>true</Quiet><Object><Key>e</Key></Object></Delete>"
        )
    )
    assert list(quiet) == []
    assert xml_of(client.get("/bkt?list-type=2")).findtext(f"{NS}KeyCount") == "0"
    assert error_code(client.post("/bkt?delete", content="<Delete></Delete>")) == "MalformedXML"
    assert error_code(client.post("/bkt?delete", content="not xml")) == "MalformedXML"
    bomb = '<!DOCTYPE d [<!ENTITY a "aaaa">]><Delete><Object><Key>&a;</Key></Object></Delete>'
    assert error_code(client.post("/bkt?delete", content=bomb)) == "MalformedXML"


def test_copy_object(client: TestClient, bucket: str) -> None:
    client.put("/bkt/src", content=b"payload", headers={"content-type": "text/csv", "x-amz-meta-a": "1"})
    copied = client.put("/bkt/dst", headers={"x-amz-copy-source": "/bkt/src"})
    assert copied.status_code == 200
    result = xml_of(copied)
    assert result.tag == f"{NS}CopyObjectResult"
    assert find(result, "ETag") == f'"{hashlib.md5(b"payload").hexdigest()}"'
    got = client.get("/bkt/dst")
    assert got.content == b"payload" and got.headers["content-type"] == "text/csv"
    assert got.headers["x-amz-meta-a"] == "1"
    replaced = client.put(
        "/bkt/dst2",
        headers={"x-amz-copy-source": "bkt/src", "x-amz-metadata-directive": "REPLACE", "x-amz-meta-b": "2"},
    )
    assert replaced.status_code == 200
    got = client.get("/bkt/dst2")
    assert got.headers["x-amz-meta-b"] == "2" and "x-amz-meta-a" not in got.headers
    itself = client.put("/bkt/src", headers={"x-amz-copy-source": "/bkt/src"})
    assert itself.status_code == 400 and error_code(itself) == "InvalidRequest"
    in_place = client.put(
        "/bkt/src",
        headers={
            "x-amz-copy-source": "/bkt/src",
            "x-amz-metadata-directive": "REPLACE",
            "content-type": "a/b",
        },
    )
    assert in_place.status_code == 200 and client.get("/bkt/src").headers["content-type"] == "a/b"
    missing = client.put("/bkt/dst3", headers={"x-amz-copy-source": "/bkt/none%20here"})
    assert missing.status_code == 404 and xml_of(missing).findtext("Key") == "none here"
    no_bucket = client.put("/bkt/dst3", headers={"x-amz-copy-source": "/nob/src"})
    assert error_code(no_bucket) == "NoSuchBucket"
    failed = client.put(
        "/bkt/dst3", headers={"x-amz-copy-source": "/bkt/src", "x-amz-copy-source-if-match": '"x"'}
    )
    assert failed.status_code == 412


# -- listing ---------------------------------------------------------------------------------

# In S3 key order: "-" sorts before "/".
KEYS = ["a.txt", "dir-z", "dir/x/1", "dir/x/2", "dir/y", "e f+g.txt", "logs/2024/01", "logs/2024/02", "z"]


@pytest.fixture
def listed_bucket(client: TestClient, bucket: str) -> str:
    for key in KEYS:
        client.put(f"/{bucket}/{key}", content=key.encode())
    return bucket


def v2_pages(client: TestClient, params: dict[str, str]) -> list[ET.Element]:
    pages: list[ET.Element] = []
    token = None
    for _ in range(50):
        query = {"list-type": "2", **params, **({"continuation-token": token} if token else {})}
        root = xml_of(client.get("/bkt", params=query))
        pages.append(root)
        if find(root, "IsTruncated") != "true":
            return pages
        token = find(root, "NextContinuationToken")
        assert token
    raise AssertionError("pagination did not end")


def entries(pages: list[ET.Element], encoded: bool = False) -> list[str]:
    from urllib.parse import unquote_plus

    names = []
    for root in pages:
        names += [c.findtext(f"{NS}Key") or "" for c in findall(root, "Contents")]
        names += [c.findtext(f"{NS}Prefix") or "" for c in findall(root, "CommonPrefixes")]
    return [unquote_plus(n) for n in names] if encoded else names


def test_list_v2(client: TestClient, listed_bucket: str) -> None:
    root = xml_of(client.get("/bkt?list-type=2"))
    assert root.tag == f"{NS}ListBucketResult"
    assert find(root, "KeyCount") == str(len(KEYS)) and find(root, "IsTruncated") == "false"
    assert entries([root]) == KEYS
    first = findall(root, "Contents")[0]
    assert first.findtext(f"{NS}ETag") == f'"{hashlib.md5(b"a.txt").hexdigest()}"'
    assert first.findtext(f"{NS}Size") == "5" and first.findtext(f"{NS}StorageClass") == "STANDARD"
    assert first.find(f"{NS}Owner") is None
    assert xml_of(client.get("/bkt?list-type=2&fetch-owner=true")).find(_ns("Contents/Owner")) is not None

    by_folder = xml_of(client.get("/bkt?list-type=2&delimiter=/"))
    assert entries([by_folder]) == ["a.txt", "dir-z", "e f+g.txt", "z", "dir/", "logs/"]
    assert find(by_folder, "Delimiter") == "/"
    nested = xml_of(client.get("/bkt?list-type=2&delimiter=/&prefix=dir/"))
    assert entries([nested]) == ["dir/y", "dir/x/"]
    partial = xml_of(client.get("/bkt?list-type=2&delimiter=/&prefix=lo"))
    assert entries([partial]) == ["logs/"]
    assert entries([xml_of(client.get("/bkt?list-type=2&prefix=../"))]) == []

    for size in (1, 2, 3, 100):
        assert entries(v2_pages(client, {"max-keys": str(size)})) == KEYS
        paged = v2_pages(client, {"max-keys": str(size), "delimiter": "/"})
        assert sorted(entries(paged)) == sorted(["a.txt", "dir-z", "e f+g.txt", "z", "dir/", "logs/"])
        assert all(int(find(p, "KeyCount") or 0) <= size for p in paged)
    assert find(xml_of(client.get("/bkt?list-type=2&max-keys=0")), "KeyCount") == "0"
    after = xml_of(client.get("/bkt?list-type=2&start-after=dir/y"))
    assert entries([after]) == KEYS[5:] and find(after, "StartAfter") == "dir/y"
    within = xml_of(client.get("/bkt?list-type=2&start-after=dir/x/1&delimiter=/"))
    assert entries([within]) == ["e f+g.txt", "z", "dir/", "logs/"]

    encoded = xml_of(client.get("/bkt?list-type=2&encoding-type=url&prefix=e"))
    assert find(encoded, "EncodingType") == "url"
    assert find(encoded, "Contents/Key") == "e%20f%2Bg.txt"
    assert error_code(client.get("/bkt?list-type=2&encoding-type=base64")) == "InvalidArgument"
    assert error_code(client.get("/bkt?list-type=2&continuation-token=%25%25")) == "InvalidArgument"
    assert error_code(client.get("/bkt?list-type=2&max-keys=x")) == "InvalidArgument"
    assert error_code(client.get("/nob?list-type=2")) == "NoSuchBucket"


def test_list_v1(client: TestClient, listed_bucket: str) -> None:
    root = xml_of(client.get("/bkt"))
    assert entries([root]) == KEYS and find(root, "Marker") == ""
    assert root.find(_ns("Contents/Owner")) is not None
    first = xml_of(client.get("/bkt?max-keys=2"))
    assert find(first, "IsTruncated") == "true" and find(first, "NextMarker") is None
    rest = xml_of(client.get("/bkt?marker=dir/x/1"))
    assert entries([rest]) == KEYS[3:]
    # With a delimiter, NextMarker is given and may be a common prefix.
    names, marker = [], ""
    for _ in range(20):
        page = xml_of(client.get("/bkt", params={"delimiter": "/", "max-keys": "1", "marker": marker}))
        names += entries([page])
        if find(page, "IsTruncated") != "true":
            break
        marker = find(page, "NextMarker") or ""
    assert sorted(names) == sorted(["a.txt", "dir-z", "e f+g.txt", "z", "dir/", "logs/"])
    assert len(names) == 6


def test_uploads_and_internal_files_are_never_listed(
    client: TestClient, bucket: str, store: LocalObjectStore
) -> None:
    client.put("/bkt/k", content=b"x", headers={"content-type": "text/plain"})
    client.post("/bkt/pending?uploads")
    assert (store.root / "bkt" / RESERVED / "uploads").is_dir()
    assert entries([xml_of(client.get("/bkt?list-type=2"))]) == ["k"]
    assert entries([xml_of(client.get(f"/bkt?list-type=2&prefix={RESERVED}"))]) == []


# -- multipart -------------------------------------------------------------------------------


def start_upload(client: TestClient, key: str, **headers: str) -> str:
    response = client.post(f"/bkt/{key}?uploads", headers=headers)
    assert response.status_code == 200
    root = xml_of(response)
    assert root.tag == f"{NS}InitiateMultipartUploadResult"
    assert find(root, "Key") == key and find(root, "Bucket") == "bkt"
    upload_id = find(root, "UploadId")
    assert upload_id
    return upload_id


def put_part(client: TestClient, key: str, upload_id: str, number: int, data: bytes) -> str:
    response = client.put(f"/bkt/{key}?partNumber={number}&uploadId={upload_id}", content=data)
    assert response.status_code == 200, response.text
    return str(response.headers["etag"])


def complete_body(parts: list[tuple[int, str]]) -> str:
    inner = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in parts)
    return f'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</CompleteMultipartUpload>'


def test_multipart_upload(client: TestClient, bucket: str, store: LocalObjectStore) -> None:
    rng = random.Random(5)
    parts_data = [rng.randbytes(MIN_PART + 10), rng.randbytes(MIN_PART), rng.randbytes(7)]
    upload_id = start_upload(
        client, "big/file.bin", **{"content-type": "application/zip", "x-amz-meta-k": "v"}
    )
    etags = [put_part(client, "big/file.bin", upload_id, n, d) for n, d in enumerate(parts_data, start=1)]
    # Re-sending a part replaces it.
    parts_data[1] = rng.randbytes(MIN_PART)
    etags[1] = put_part(client, "big/file.bin", upload_id, 2, parts_data[1])
    assert client.head("/bkt/big/file.bin").status_code == 404  # not an object until completed

    listed = xml_of(client.get(f"/bkt/big/file.bin?uploadId={upload_id}"))
    assert listed.tag == f"{NS}ListPartsResult"
    assert [p.findtext(f"{NS}ETag") for p in findall(listed, "Part")] == etags
    assert [p.findtext(f"{NS}Size") for p in findall(listed, "Part")] == [str(len(d)) for d in parts_data]
    paged = xml_of(client.get(f"/bkt/big/file.bin?uploadId={upload_id}&max-parts=1&part-number-marker=1"))
    assert [p.findtext(f"{NS}PartNumber") for p in findall(paged, "Part")] == ["2"]
    assert find(paged, "IsTruncated") == "true" and find(paged, "NextPartNumberMarker") == "2"
    uploads = xml_of(client.get("/bkt?uploads"))
    assert uploads.tag == f"{NS}ListMultipartUploadsResult"
    assert [u.findtext(f"{NS}UploadId") for u in findall(uploads, "Upload")] == [upload_id]

    done = client.post(
        f"/bkt/big/file.bin?uploadId={upload_id}", content=complete_body(list(enumerate(etags, start=1)))
    )
    assert done.status_code == 200, done.text
    result = xml_of(done)
    assert result.tag == f"{NS}CompleteMultipartUploadResult"
    expected_etag = multipart_etag([e.strip('"') for e in etags])
    assert expected_etag.endswith("-3")
    assert find(result, "ETag") == f'"{expected_etag}"'
    assert (find(result, "Location") or "").endswith("/bkt/big/file.bin")
    got = client.get("/bkt/big/file.bin")
    assert got.content == b"".join(parts_data)
    assert got.headers["etag"] == f'"{expected_etag}"'
    assert got.headers["content-type"] == "application/zip" and got.headers["x-amz-meta-k"] == "v"
    assert find(xml_of(client.get("/bkt?list-type=2")), "Contents/ETag") == f'"{expected_etag}"'
    # The multipart ETag survives losing the ETag cache (it is kept with the object's meta).
    for sidecar in (store.root / "bkt" / RESERVED / "etag").iterdir():
        sidecar.unlink()
    fresh = LocalObjectStore(store.root).head(S3Uri("bkt", "big/file.bin"))
    assert fresh is not None and fresh.etag == expected_etag
    # The upload is gone.
    assert not any((store.root / "bkt" / RESERVED / "uploads").iterdir())
    gone = client.get(f"/bkt/big/file.bin?uploadId={upload_id}")
    assert gone.status_code == 404 and error_code(gone) == "NoSuchUpload"
    assert xml_of(gone).findtext("UploadId") == upload_id


def test_multipart_errors(client: TestClient, bucket: str) -> None:
    rng = random.Random(6)
    upload_id = start_upload(client, "k")
    big, small = rng.randbytes(MIN_PART), rng.randbytes(10)
    e1 = put_part(client, "k", upload_id, 1, small)
    e2 = put_part(client, "k", upload_id, 2, big)

    def complete(parts: list[tuple[int, str]]) -> Any:
        return client.post(f"/bkt/k?uploadId={upload_id}", content=complete_body(parts))

    assert error_code(complete([(2, e2), (1, e1)])) == "InvalidPartOrder"
    assert error_code(complete([(1, e1), (1, e1)])) == "InvalidPartOrder"
    assert error_code(complete([(1, e1), (3, e2)])) == "InvalidPart"
    assert error_code(complete([(1, e2)])) == "InvalidPart"
    too_small = complete([(1, e1), (2, e2)])
    assert too_small.status_code == 400 and error_code(too_small) == "EntityTooSmall"
    assert error_code(client.post(f"/bkt/k?uploadId={upload_id}", content="<CompleteMultipartUpload/>")) == (
        "MalformedXML"
    )
    for number in ("0", "10001", "x"):
        bad = client.put(f"/bkt/k?partNumber={number}&uploadId={upload_id}", content=b"x")
        assert error_code(bad) == "InvalidArgument"
    assert (
        error_code(client.put("/bkt/other?partNumber=1&uploadId=" + upload_id, content=b"x"))
        == "NoSuchUpload"
    )
    traversal = client.put("/bkt/k?partNumber=1&uploadId=../../../etc", content=b"x")
    assert traversal.status_code == 404 and error_code(traversal) == "NoSuchUpload"
    # A subset of parts (the last may be small) completes.
    assert complete([(2, e2)]).status_code == 200
    assert client.get("/bkt/k").content == big

    aborted = start_upload(client, "k2")
    put_part(client, "k2", aborted, 1, small)
    assert client.delete(f"/bkt/k2?uploadId={aborted}").status_code == 204
    assert error_code(client.delete(f"/bkt/k2?uploadId={aborted}")) == "NoSuchUpload"
    assert error_code(client.post("/nob/k?uploads")) == "NoSuchBucket"


def test_upload_part_copy(client: TestClient, bucket: str) -> None:
    data = random.Random(7).randbytes(3 * MIN_PART)
    client.put("/bkt/src", content=data)
    upload_id = start_upload(client, "dst")
    etags = []
    for number, (start, end) in enumerate([(0, 2 * MIN_PART - 1), (2 * MIN_PART, 3 * MIN_PART - 1)], start=1):
        response = client.put(
            f"/bkt/dst?partNumber={number}&uploadId={upload_id}",
            headers={"x-amz-copy-source": "/bkt/src", "x-amz-copy-source-range": f"bytes={start}-{end}"},
        )
        assert response.status_code == 200, response.text
        root = xml_of(response)
        assert root.tag == f"{NS}CopyPartResult"
        etags.append(find(root, "ETag") or "")
    bad = client.put(
        f"/bkt/dst?partNumber=3&uploadId={upload_id}",
        headers={"x-amz-copy-source": "/bkt/src", "x-amz-copy-source-range": f"bytes=0-{len(data)}"},
    )
    assert error_code(bad) == "InvalidArgument"
    assert client.post(
        f"/bkt/dst?uploadId={upload_id}", content=complete_body([(1, etags[0]), (2, etags[1])])
    )
    assert client.get("/bkt/dst").content == data


# -- the store underneath --------------------------------------------------------------------


def keys_of(items: list[ObjectInfo | str]) -> list[str]:
    return [item if isinstance(item, str) else item.key for item in items]


def test_store_list_entries(store: LocalObjectStore) -> None:
    store.create_bucket("b")
    for key in KEYS:
        store.put_bytes(S3Uri("b", key), b"x")
    assert keys_of(list(store.list_entries("b"))) == KEYS
    by_folder = ["a.txt", "dir-z", "dir/", "e f+g.txt", "logs/", "z"]
    assert keys_of(list(store.list_entries("b", delimiter="/"))) == by_folder
    # A common prefix given as `after` (the last entry of a page) is not repeated.
    assert keys_of(list(store.list_entries("b", delimiter="/", after="dir/"))) == by_folder[3:]
    # A key inside a common prefix as `after` still yields that prefix for the later keys.
    assert keys_of(list(store.list_entries("b", delimiter="/", after="dir/x/2"))) == by_folder[2:]
    assert keys_of(list(store.list_entries("b", prefix="logs/2024/", after="logs/2024/01"))) == [
        "logs/2024/02"
    ]
    assert keys_of(list(store.list_entries("b", prefix="dir/x"))) == ["dir/x/1", "dir/x/2"]
    assert keys_of(list(store.list_entries("b", delimiter="x"))) == [
        "a.tx",
        "dir-z",
        "dir/x",
        "dir/y",
        "e f+g.tx",
        "logs/2024/01",
        "logs/2024/02",
        "z",
    ]
    # Every page boundary resumes exactly where the last page stopped.
    for delimiter in ("", "/", "x", "2"):
        whole = keys_of(list(store.list_entries("b", delimiter=delimiter)))
        resumed, after = [], ""
        while True:
            page = keys_of(
                list(itertools.islice(store.list_entries("b", delimiter=delimiter, after=after), 1))
            )
            if not page:
                break
            resumed += page
            after = page[-1]
        assert resumed == whole, delimiter
    with pytest.raises(NoSuchBucket):
        list(store.list_entries("nob"))


def test_store_attributes_and_copy(store: LocalObjectStore) -> None:
    store.create_bucket("b")
    attributes = ObjectAttributes("text/csv", {"a": "1"}, {"cache-control": "no-store"})
    writer = store.writer(S3Uri("b", "k"), attributes)
    with writer:
        writer.write(b"abc")
        info = writer.commit()
    handle, opened, got = LocalObjectStore(store.root).open_object(S3Uri("b", "k"))
    with handle:
        assert handle.read() == b"abc"
    assert opened == info and got == attributes
    copied = store.copy_object(S3Uri("b", "k"), S3Uri("b", "k2"))
    assert store.open_object(S3Uri("b", "k2"))[2] == attributes and copied.etag == info.etag
    # Writing around the store (in place) drops attributes that no longer describe the file.
    path = store.local_path(S3Uri("b", "k"))
    assert path is not None
    path.write_bytes(b"abcd")
    handle, _, after = store.open_object(S3Uri("b", "k"))
    handle.close()
    assert after == ObjectAttributes()
    # A plain put (homeport cp) replaces them too; a delete removes the sidecar.
    store.put_bytes(S3Uri("b", "k2"), b"new")
    handle, _, plain = store.open_object(S3Uri("b", "k2"))
    handle.close()
    assert plain == ObjectAttributes()
    store.delete(S3Uri("b", "k"))
    assert list((store.root / "b" / RESERVED / "meta").iterdir()) == []


def test_store_multipart_and_bucket_rules(store: LocalObjectStore) -> None:
    store.create_bucket("b")
    upload = store.create_upload(S3Uri("b", "m"))
    parts = []
    for number, data in [(1, b"a" * MIN_PART), (2, b"tail")]:
        writer = store.part_writer(S3Uri("b", "m"), upload.upload_id, number)
        with writer:
            writer.write(data)
            parts.append(writer.commit())
    assert [p.number for p in store.list_parts(S3Uri("b", "m"), upload.upload_id)[1]] == [1, 2]
    assert [u.upload_id for u in store.list_uploads("b")] == [upload.upload_id]
    with pytest.raises(InvalidPartOrder):
        store.complete_upload(S3Uri("b", "m"), upload.upload_id, [(2, parts[1].etag), (1, parts[0].etag)])
    with pytest.raises(InvalidPart):
        store.complete_upload(S3Uri("b", "m"), upload.upload_id, [(1, parts[1].etag)])
    with pytest.raises(NoSuchUpload):
        store.list_parts(S3Uri("b", "other"), upload.upload_id)
    with pytest.raises(NoSuchUpload):
        store.part_writer(S3Uri("b", "m"), "0" * 31 + "/", 1)
    info = store.complete_upload(
        S3Uri("b", "m"), upload.upload_id, [(p.number, f'"{p.etag}"') for p in parts]
    )
    assert info.etag == multipart_etag([p.etag for p in parts]) and info.size == MIN_PART + 4
    assert store.list_uploads("b") == []
    small = store.create_upload(S3Uri("b", "s"))
    writer = store.part_writer(S3Uri("b", "s"), small.upload_id, 1)
    with writer:
        writer.write(b"x")
        first = writer.commit()
    writer = store.part_writer(S3Uri("b", "s"), small.upload_id, 2)
    with writer:
        writer.write(b"y")
        second = writer.commit()
    with pytest.raises(EntityTooSmall):
        store.complete_upload(S3Uri("b", "s"), small.upload_id, [(1, first.etag), (2, second.etag)])
    with pytest.raises(BucketNotEmpty):
        store.delete_bucket("b")
    store.delete(S3Uri("b", "m"))
    store.delete_bucket("b")
    assert not store.bucket_exists("b") and store.list_buckets() == []
    with pytest.raises(NoSuchBucket):
        store.delete_bucket("b")
