"""SDK v2: sagemaker.Session and its default bucket; Session.upload_data."""

from __future__ import annotations

import os

import sagemaker
from sdk_common import boto3_client, done, params

p = params()
mode = p["mode"]

if mode == "named":
    session = sagemaker.Session(default_bucket=p["bucket"])
    bucket = session.default_bucket()
    uri = session.upload_data(p["path"], key_prefix=p["key_prefix"])
    # Uploading twice into an existing bucket is fine too.
    again = sagemaker.Session(default_bucket=p["bucket"]).upload_data(
        p["path"], key_prefix=p["key_prefix"] + "-2"
    )
    head = boto3_client("s3").head_object(
        Bucket=bucket, Key=f"{p['key_prefix']}/{os.path.basename(p['path'])}"
    )
    done(bucket=bucket, uri=uri, again=again, size=head["ContentLength"])
elif mode in ("unnamed", "config"):
    # No name given: the SDK names the bucket sagemaker-<region>-<account> (the account from
    # STS), or takes SageMaker.PythonSDK.Modules.Session.DefaultS3Bucket from its config
    # file, and creates it through the S3 API.
    session = sagemaker.Session()
    try:
        bucket = session.default_bucket()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        done(error=f"{type(exc).__name__}: {exc}")
    else:
        uri = session.upload_data(p["path"], key_prefix=p["key_prefix"])
        done(bucket=bucket, uri=uri)
else:
    raise SystemExit(f"unknown mode {mode}")
