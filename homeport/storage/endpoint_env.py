"""What a container needs to reach the job's object store through the S3 API.

Framework toolkits download ``sagemaker_submit_directory`` (``s3://.../sourcedir.tar.gz``) with
boto3 and honour ``S3_ENDPOINT_URL`` (the sagemaker-training toolkit does). Homeport points it,
and ``AWS_ENDPOINT_URL_S3`` for any other boto3 code, at the store the job's URIs live in:
Homeport's own S3 API for the embedded store, or the configured S3 endpoint. On the embedded
store any credentials are accepted, so placeholder ones are given when the job brings none.
A job's own ``Environment`` overrides all of these.
"""

from __future__ import annotations

from homeport.config import Settings


def server_url(settings: Settings) -> str:
    host = settings.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def object_store_environment(settings: Settings) -> dict[str, str]:
    if settings.object_store == "local":
        url = server_url(settings)
        return {
            "S3_ENDPOINT_URL": url,
            "AWS_ENDPOINT_URL_S3": url,
            "AWS_ACCESS_KEY_ID": "homeport",
            "AWS_SECRET_ACCESS_KEY": "homeport",
        }
    if settings.s3_endpoint_url:
        return {"S3_ENDPOINT_URL": settings.s3_endpoint_url, "AWS_ENDPOINT_URL_S3": settings.s3_endpoint_url}
    return {}
