"""The S3 API on a live server, through real clients: boto3's s3 client and transfer manager,
presigned URLs, the AWS CLI's ``s3`` commands, and ``homeport cp`` on the same store; and the
SageMaker API still answering on the same URL.

One server for the module (the session ``server`` fixture runs each test on every runtime,
which S3 does not depend on).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from e2e_support import Server, client_env, start_server

AWS = str(Path(sys.executable).parent / "aws")
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("homeport-s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3(s3_server: Server) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3_server.url,
        region_name="us-east-1",
        aws_access_key_id="homeport",
        aws_secret_access_key="homeport",
        config=Config(retries={"max_attempts": 1}),
    )


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 4 * MiB))
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def test_boto3_buckets_and_objects(s3: Any) -> None:
    s3.create_bucket(Bucket="e2e-objects")
    s3.head_bucket(Bucket="e2e-objects")
    assert "e2e-objects" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.get_bucket_location(Bucket="e2e-objects")["LocationConstraint"] is None
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="e2e-objects")
    assert code_of(exc) == "BucketAlreadyOwnedByYou"
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="Not_Valid")
    assert code_of(exc) == "InvalidBucketName"
    s3.create_bucket(Bucket="e2e-elsewhere", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})

    put = s3.put_object(
        Bucket="e2e-objects",
        Key="data/hello.txt",
        Body=b"0123456789",
        ContentType="text/plain",
        Metadata={"owner": "alice"},
    )
    assert put["ETag"] == f'"{hashlib.md5(b"0123456789").hexdigest()}"'
    got = s3.get_object(Bucket="e2e-objects", Key="data/hello.txt")
    assert got["Body"].read() == b"0123456789"
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"owner": "alice"}
    assert got["ContentLength"] == 10 and got["ETag"] == put["ETag"]
    ranged = s3.get_object(Bucket="e2e-objects", Key="data/hello.txt", Range="bytes=2-4")
    assert ranged["Body"].read() == b"234" and ranged["ContentRange"] == "bytes 2-4/10"
    assert (
        s3.get_object(Bucket="e2e-objects", Key="data/hello.txt", Range="bytes=-3")["Body"].read() == b"789"
    )
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="e2e-objects", Key="data/hello.txt", Range="bytes=10-")
    assert code_of(exc) == "InvalidRange"
    head = s3.head_object(Bucket="e2e-objects", Key="data/hello.txt")
    assert head["ContentLength"] == 10 and head["Metadata"] == {"owner": "alice"}
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="e2e-objects", Key="data/hello.txt", IfNoneMatch=put["ETag"])
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304

    s3.copy_object(Bucket="e2e-objects", Key="copy/same.txt", CopySource="e2e-objects/data/hello.txt")
    same = s3.head_object(Bucket="e2e-objects", Key="copy/same.txt")
    assert same["Metadata"] == {"owner": "alice"} and same["ContentType"] == "text/plain"
    s3.copy_object(
        Bucket="e2e-objects",
        Key="copy/replaced.txt",
        CopySource={"Bucket": "e2e-objects", "Key": "data/hello.txt"},
        MetadataDirective="REPLACE",
        Metadata={"owner": "bob"},
        ContentType="text/csv",
    )
    replaced = s3.head_object(Bucket="e2e-objects", Key="copy/replaced.txt")
    assert replaced["Metadata"] == {"owner": "bob"} and replaced["ContentType"] == "text/csv"

    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="e2e-objects", Key="missing")
    assert code_of(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket="e2e-objects", Key="missing")
    assert code_of(exc) == "404"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="no-such-bucket", Key="k")
    assert code_of(exc) == "NoSuchBucket"
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket="e2e-objects")
    assert code_of(exc) == "BucketNotEmpty"

    deleted = s3.delete_objects(
        Bucket="e2e-objects",
        Delete={"Objects": [{"Key": "copy/same.txt"}, {"Key": "copy/replaced.txt"}, {"Key": "never"}]},
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["copy/replaced.txt", "copy/same.txt", "never"]
    s3.delete_object(Bucket="e2e-objects", Key="data/hello.txt")
    s3.delete_object(Bucket="e2e-objects", Key="data/hello.txt")  # absent: fine
    s3.delete_bucket(Bucket="e2e-objects")
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket="e2e-objects")
    assert code_of(exc) == "404"


def test_boto3_listing_v1_v2_with_delimiters_and_paginators(s3: Any) -> None:
    s3.create_bucket(Bucket="e2e-listing")
    keys = sorted(
        [f"top-{i:02d}" for i in range(5)]
        + [f"dir/{i:02d}.csv" for i in range(12)]
        + [f"dir/sub/{i}" for i in range(3)]
        + ["other/x", "space key+plus.txt"]
    )
    for key in keys:
        s3.put_object(Bucket="e2e-listing", Key=key, Body=key.encode())

    for operation in ("list_objects_v2", "list_objects"):
        paginator = s3.get_paginator(operation)
        pages = list(paginator.paginate(Bucket="e2e-listing", PaginationConfig={"PageSize": 4}))
        assert len(pages) == (len(keys) + 3) // 4
        assert [o["Key"] for p in pages for o in p.get("Contents", [])] == keys
        folders = list(
            paginator.paginate(Bucket="e2e-listing", Delimiter="/", PaginationConfig={"PageSize": 3})
        )
        assert sorted(c["Prefix"] for p in folders for c in p.get("CommonPrefixes", [])) == ["dir/", "other/"]
        assert sorted(o["Key"] for p in folders for o in p.get("Contents", [])) == [
            "space key+plus.txt",
            *[f"top-{i:02d}" for i in range(5)],
        ]
        nested = list(paginator.paginate(Bucket="e2e-listing", Prefix="dir/", Delimiter="/"))
        assert [c["Prefix"] for p in nested for c in p.get("CommonPrefixes", [])] == ["dir/sub/"]
        assert len([o for p in nested for o in p.get("Contents", [])]) == 12

    v2 = s3.list_objects_v2(Bucket="e2e-listing", MaxKeys=5, StartAfter="dir/05.csv", FetchOwner=True)
    assert [o["Key"] for o in v2["Contents"]] == keys[keys.index("dir/05.csv") + 1 :][:5]
    assert v2["IsTruncated"] and v2["KeyCount"] == 5 and v2["Contents"][0]["Owner"]["DisplayName"]
    v1 = s3.list_objects(Bucket="e2e-listing", Marker="top-02")
    assert [o["Key"] for o in v1["Contents"]] == ["top-03", "top-04"]
    assert s3.list_objects_v2(Bucket="e2e-listing", Prefix="nothing/").get("KeyCount") == 0


def test_boto3_multipart_calls(s3: Any) -> None:
    s3.create_bucket(Bucket="e2e-multipart")
    upload = s3.create_multipart_upload(
        Bucket="e2e-multipart", Key="joined.bin", ContentType="application/zip"
    )
    upload_id = upload["UploadId"]
    first, second = os.urandom(5 * MiB), os.urandom(1000)
    e1 = s3.upload_part(
        Bucket="e2e-multipart", Key="joined.bin", UploadId=upload_id, PartNumber=1, Body=first
    )
    e2 = s3.upload_part(
        Bucket="e2e-multipart", Key="joined.bin", UploadId=upload_id, PartNumber=2, Body=second
    )
    parts = s3.list_parts(Bucket="e2e-multipart", Key="joined.bin", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in parts] == [
        (1, len(first), e1["ETag"]),
        (2, len(second), e2["ETag"]),
    ]
    listed = s3.list_multipart_uploads(Bucket="e2e-multipart")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("joined.bin", upload_id)]
    assert "Contents" not in s3.list_objects_v2(Bucket="e2e-multipart")  # parts are never objects
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket="e2e-multipart",
            Key="joined.bin",
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": 2, "ETag": e2["ETag"]}, {"PartNumber": 1, "ETag": e1["ETag"]}]
            },
        )
    assert code_of(exc) == "InvalidPartOrder"
    done = s3.complete_multipart_upload(
        Bucket="e2e-multipart",
        Key="joined.bin",
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1["ETag"]}, {"PartNumber": 2, "ETag": e2["ETag"]}]
        },
    )
    md5s = b"".join(bytes.fromhex(e.strip('"')) for e in (e1["ETag"], e2["ETag"]))
    assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-2"'
    got = s3.get_object(Bucket="e2e-multipart", Key="joined.bin")
    assert got["Body"].read() == first + second and got["ContentType"] == "application/zip"

    aborted = s3.create_multipart_upload(Bucket="e2e-multipart", Key="never.bin")["UploadId"]
    s3.abort_multipart_upload(Bucket="e2e-multipart", Key="never.bin", UploadId=aborted)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket="e2e-multipart", Key="never.bin", UploadId=aborted)
    assert code_of(exc) == "NoSuchUpload"

    copy_id = s3.create_multipart_upload(Bucket="e2e-multipart", Key="copied.bin")["UploadId"]
    part = s3.upload_part_copy(
        Bucket="e2e-multipart",
        Key="copied.bin",
        UploadId=copy_id,
        PartNumber=1,
        CopySource={"Bucket": "e2e-multipart", "Key": "joined.bin"},
        CopySourceRange="bytes=0-99",
    )
    s3.complete_multipart_upload(
        Bucket="e2e-multipart",
        Key="copied.bin",
        UploadId=copy_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]},
    )
    assert s3.get_object(Bucket="e2e-multipart", Key="copied.bin")["Body"].read() == first[:100]


def test_transfer_manager_50_mb_round_trip(s3: Any, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="e2e-transfer")
    source = tmp_path / "big.bin"
    expected = random_file(source, 50 * MiB)
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4)
    started = time.monotonic()
    s3.upload_file(str(source), "e2e-transfer", "models/big.bin", Config=config)
    head = s3.head_object(Bucket="e2e-transfer", Key="models/big.bin")
    assert head["ContentLength"] == 50 * MiB
    assert head["ETag"].endswith('-7"')  # 50 MiB in 8 MiB parts: a multipart object
    dest = tmp_path / "down" / "big.bin"
    dest.parent.mkdir()
    s3.download_file("e2e-transfer", "models/big.bin", str(dest), Config=config)
    assert sha256_of(dest) == expected
    assert time.monotonic() - started < 120


def test_presigned_urls(s3: Any, s3_server: Server) -> None:
    s3.create_bucket(Bucket="e2e-presigned")
    # boto3 presigns S3 URLs with SigV2 query parameters unless told s3v4: both are S3's.
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "e2e-presigned", "Key": "p.txt"})
    assert "AWSAccessKeyId=" in put_url
    assert requests.put(put_url, data=b"presigned", timeout=30).status_code == 200
    v4 = boto3.client(
        "s3",
        endpoint_url=s3_server.url,
        region_name="us-east-1",
        aws_access_key_id="homeport",
        aws_secret_access_key="homeport",
        config=Config(signature_version="s3v4"),
    )
    get_url = v4.generate_presigned_url("get_object", Params={"Bucket": "e2e-presigned", "Key": "p.txt"})
    assert "X-Amz-Credential" in get_url
    response = requests.get(get_url, timeout=30)
    assert response.status_code == 200 and response.content == b"presigned"
    # Unsigned requests are not S3's: they reach the SageMaker side (and its health route).
    assert requests.get(f"{s3_server.url}/_homeport/health", timeout=30).status_code == 200


FAKE_S3_AUTH = (
    "AWS4-HMAC-SHA256 Credential=anyone/20240101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000"
)


def test_aws_chunked_upload_over_http_chunked_transfer(s3: Any, s3_server: Server) -> None:
    """What botocore sends over TLS by default (aws-chunked, CRC32 trailer), here in HTTP/1.1
    chunked transfer encoding with no Content-Length; the signature is not checked."""
    from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

    s3.create_bucket(Bucket="e2e-chunked")
    data = os.urandom(3 * MiB + 5)
    wrapper = AwsChunkedWrapper(io.BytesIO(data), Crc32Checksum, "x-amz-checksum-crc32", chunk_size=64 * 1024)
    response = requests.put(
        f"{s3_server.url}/e2e-chunked/streamed.bin",
        data=iter(wrapper),  # a generator: requests sends Transfer-Encoding: chunked
        headers={
            "Authorization": FAKE_S3_AUTH,
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "Content-Encoding": "aws-chunked",
            "x-amz-trailer": "x-amz-checksum-crc32",
            "x-amz-decoded-content-length": str(len(data)),
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert s3.get_object(Bucket="e2e-chunked", Key="streamed.bin")["Body"].read() == data
    # A download abandoned halfway leaves the server serving.
    with requests.get(
        f"{s3_server.url}/e2e-chunked/streamed.bin",
        headers={"Authorization": FAKE_S3_AUTH},
        stream=True,
        timeout=60,
    ) as partial:
        assert len(next(partial.iter_content(1024))) == 1024
    assert s3.head_object(Bucket="e2e-chunked", Key="streamed.bin")["ContentLength"] == len(data)


def aws_s3(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = client_env(server.url)
    env["AWS_ENDPOINT_URL"] = server.url
    result = subprocess.run(
        [AWS, "s3", *args], capture_output=True, text=True, env=env, timeout=300, cwd=server.data_dir.parent
    )
    if check and result.returncode != 0:
        raise AssertionError(f"aws s3 {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def test_aws_cli_s3_commands(s3_server: Server, s3: Any, tmp_path: Path) -> None:
    aws_s3(s3_server, "mb", "s3://e2e-cli")
    big = tmp_path / "big.bin"
    expected = random_file(big, 20 * MiB)
    aws_s3(s3_server, "cp", str(big), "s3://e2e-cli/blobs/big.bin")
    assert s3.head_object(Bucket="e2e-cli", Key="blobs/big.bin")["ETag"].endswith('-3"')  # multipart
    aws_s3(s3_server, "cp", "s3://e2e-cli/blobs/big.bin", str(tmp_path / "back.bin"))
    assert sha256_of(tmp_path / "back.bin") == expected

    folder = tmp_path / "folder"
    (folder / "nested" / "deeper").mkdir(parents=True)
    files = {"a.txt": b"a", "nested/b.csv": b"1,2\n", "nested/deeper/c.json": b"{}"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    aws_s3(s3_server, "sync", str(folder), "s3://e2e-cli/synced")
    assert (
        "upload:" not in aws_s3(s3_server, "sync", str(folder), "s3://e2e-cli/synced").stdout
    )  # nothing new
    copied = tmp_path / "copied"
    aws_s3(s3_server, "sync", "s3://e2e-cli/synced", str(copied))
    assert {
        p.relative_to(copied).as_posix(): p.read_bytes() for p in copied.rglob("*") if p.is_file()
    } == files
    json_head = s3.head_object(Bucket="e2e-cli", Key="synced/nested/deeper/c.json")
    assert json_head["ContentType"] == "application/json"  # the CLI guesses it; it is kept

    top = aws_s3(s3_server, "ls", "s3://e2e-cli/").stdout
    assert "PRE blobs/" in top and "PRE synced/" in top
    recursive = aws_s3(s3_server, "ls", "--recursive", "s3://e2e-cli/").stdout
    for key in ["blobs/big.bin", "synced/a.txt", "synced/nested/b.csv", "synced/nested/deeper/c.json"]:
        assert key in recursive
    assert "e2e-cli" in aws_s3(s3_server, "ls").stdout

    refused = aws_s3(s3_server, "rb", "s3://e2e-cli", check=False)
    assert refused.returncode != 0 and "BucketNotEmpty" in refused.stderr
    aws_s3(s3_server, "rm", "--recursive", "s3://e2e-cli/")
    assert aws_s3(s3_server, "ls", "--recursive", "s3://e2e-cli/", check=False).stdout.strip() == ""
    aws_s3(s3_server, "rb", "s3://e2e-cli")
    assert "e2e-cli" not in aws_s3(s3_server, "ls").stdout


def test_same_store_as_homeport_cp(s3_server: Server, s3: Any, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="e2e-shared")
    s3.put_object(Bucket="e2e-shared", Key="from-s3/data.csv", Body=b"1,2,3\n")
    s3_server.cp("s3://e2e-shared/from-s3/data.csv", str(tmp_path / "data.csv"))
    assert (tmp_path / "data.csv").read_bytes() == b"1,2,3\n"
    (tmp_path / "model.bin").write_bytes(b"weights")
    s3_server.cp(str(tmp_path / "model.bin"), "s3://e2e-shared/from-cp/model.bin")
    got = s3.get_object(Bucket="e2e-shared", Key="from-cp/model.bin")
    assert got["Body"].read() == b"weights"
    assert got["ETag"] == f'"{hashlib.md5(b"weights").hexdigest()}"'
    listed = s3.list_objects_v2(Bucket="e2e-shared")
    assert [o["Key"] for o in listed["Contents"]] == ["from-cp/model.bin", "from-s3/data.csv"]


def test_sagemaker_api_still_answers_on_the_same_url(s3_server: Server, s3: Any) -> None:
    sm = s3_server.sagemaker()
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []
    with pytest.raises(ClientError) as exc:
        sm.describe_training_job(TrainingJobName="not-there")
    assert code_of(exc) == "ValidationException"
    s3.create_bucket(Bucket="e2e-side-by-side")
    assert "e2e-side-by-side" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
