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
from xml.sax.saxutils import escape

from homeport.api.query_protocol import action_of, error_xml, read_params, send_xml
from homeport.api.runtime_api import ASGIApp, Receive, Scope, Send

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
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


def build_sts_app(account: str) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(uuid.uuid4())
        params = await read_params(scope, receive)
        if params is None:
            status, payload = (
                413,
                error_xml(NAMESPACE, "RequestEntityTooLarge", "The request body is too large.", request_id),
            )
        elif (action := action_of(params)) == "GetCallerIdentity":
            status, payload = 200, _identity_xml(account, request_id)
        else:
            message = (
                f"Could not find operation {action} for version 2011-06-15" if action else "Missing Action"
            )
            status, payload = 400, error_xml(NAMESPACE, "InvalidAction", message, request_id)
        await send_xml(send, status, payload, request_id)

    return app
