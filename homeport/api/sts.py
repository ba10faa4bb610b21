"""STS on the same URL: GetCallerIdentity answers the configured account.

Clients that set ``AWS_ENDPOINT_URL`` send STS calls here too (the SageMaker SDK asks
``GetCallerIdentity`` for the account when it builds a default bucket name). STS speaks the
AWS query protocol: a form-encoded POST (``Action=GetCallerIdentity&Version=2011-06-15``) and
an XML answer. Requests are told apart by their SigV4 credential scope (service ``sts``);
signatures are not verified, so the caller is always the account's ``homeport`` user. Any
other action gets STS's own error shape with ``InvalidAction``.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from homeport.api.runtime_api import ASGIApp, Receive, Scope, Send

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
MAX_BODY = 64 * 1024
USER = "homeport"


def caller_identity(account: str) -> dict[str, str]:
    return {
        "UserId": f"AIDA{account}HOMEPORT",
        "Account": account,
        "Arn": f"arn:aws:iam::{account}:user/{USER}",
    }


def _identity_xml(account: str, request_id: str) -> bytes:
    fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in caller_identity(account).items())
    return (
        f'<GetCallerIdentityResponse xmlns="{NAMESPACE}"><GetCallerIdentityResult>{fields}'
        f"</GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId>"
        "</ResponseMetadata></GetCallerIdentityResponse>"
    ).encode()


def _error_xml(code: str, message: str, request_id: str) -> bytes:
    return (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


async def read_form_body(receive: Receive) -> bytes | None:
    """The request body, or None when it exceeds MAX_BODY (query-protocol calls are small)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body"):
            return body


def build_sts_app(account: str) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(uuid.uuid4())
        body = await read_form_body(receive) if scope.get("method") == "POST" else b""
        if body is None:
            status, payload = (
                413,
                _error_xml("RequestEntityTooLarge", "The request body is too large.", request_id),
            )
        else:
            params = parse_qs(body.decode("utf-8", "replace"))
            params.update(parse_qs(scope.get("query_string", b"").decode("utf-8", "replace")))
            action = (params.get("Action") or [""])[0]
            if action == "GetCallerIdentity":
                status, payload = 200, _identity_xml(account, request_id)
            else:
                message = (
                    f"Could not find operation {action} for version 2011-06-15"
                    if action
                    else "Missing Action"
                )
                status, payload = 400, _error_xml("InvalidAction", message, request_id)
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

    return app
