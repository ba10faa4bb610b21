"""S3 requests to a server whose object store is a real S3: answered with where to go instead.

With ``--object-store s3`` the objects live in that S3, not here, and Homeport does not proxy
them. A client that sends S3 requests to Homeport's URL (``AWS_ENDPOINT_URL`` set for every
service) gets ``InvalidRequest`` (400) with the ``Endpoint`` to use and a message naming the
setting that sends S3 clients there (``AWS_ENDPOINT_URL_S3``, which botocore reads before
``AWS_ENDPOINT_URL``). Not S3's ``PermanentRedirect`` (301): botocore answers any redirect by
looking the bucket's region up with HeadBucket on the same endpoint, which would redirect again,
without end.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from homeport.api.runtime_api import Receive, Scope, Send
from homeport.api.s3.errors import S3Error
from homeport.api.s3.request import new_request_id
from homeport.api.s3.response import send_error

__all__ = ["build_s3_elsewhere_app"]

AWS_S3 = "https://s3.amazonaws.com"


class S3Elsewhere:
    """An ASGI app that answers every S3 request with the endpoint that holds the objects."""

    def __init__(self, endpoint_url: str | None) -> None:
        self.endpoint_url = endpoint_url or AWS_S3
        host = urlsplit(self.endpoint_url).netloc or self.endpoint_url
        self.error = S3Error(
            "InvalidRequest",
            "This Homeport server keeps its objects in the S3 at "
            f"{self.endpoint_url}: send S3 requests there (set AWS_ENDPOINT_URL_S3={self.endpoint_url}, "
            "or give boto3's s3 client that endpoint_url).",
            400,
            Endpoint=host,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send_error(send, new_request_id(), str(scope.get("method", "GET")).upper(), self.error)


def build_s3_elsewhere_app(endpoint_url: str | None) -> S3Elsewhere:
    return S3Elsewhere(endpoint_url)
