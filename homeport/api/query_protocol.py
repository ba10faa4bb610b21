"""The AWS query protocol, as STS and IAM speak it on the server's URL: form-encoded parameters
(``Action=...&Version=...``, in a POST body or the query string) and XML answers, errors in the
``<ErrorResponse>`` shape botocore's query parser reads."""

from __future__ import annotations

from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from homeport.api.runtime_api import Receive, Scope, Send

MAX_BODY = 64 * 1024  # query-protocol calls are small


async def read_params(scope: Scope, receive: Receive) -> dict[str, list[str]] | None:
    """The request's parameters (POST body, then the query string over it); None when the body
    exceeds MAX_BODY."""
    body = b""
    if scope.get("method") == "POST":
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                return None
            if not message.get("more_body"):
                break
    params = parse_qs(body.decode("utf-8", "replace"))
    params.update(parse_qs(scope.get("query_string", b"").decode("utf-8", "replace")))
    return params


def action_of(params: dict[str, list[str]]) -> str:
    return (params.get("Action") or [""])[0]


def error_xml(namespace: str, code: str, message: str, request_id: str) -> bytes:
    return (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


async def send_xml(send: Send, status: int, payload: bytes, request_id: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/xml"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-amzn-requestid", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
