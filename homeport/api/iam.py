"""IAM on the same URL: every action is answered ``AccessDenied``, in IAM's own error shape.

Homeport has no IAM: roles are taken as given (any ``RoleArn`` is accepted and nothing is
checked against it). Clients that set ``AWS_ENDPOINT_URL`` still send IAM calls here: the
SageMaker Python SDK v3 simulates the execution role's policies
(``SimulatePrincipalPolicy``) and reads its trust policy (``GetRole``) before a training job,
and SDK v2's ``get_execution_role`` reads the role. An ``AccessDenied`` answer is what those
callers are written to handle: "permissions cannot be verified", then they go on. Any other
answer (the SageMaker JSON error a request without a known scope would get) is not IAM's XML
and makes them fail to parse it.

IAM speaks the AWS query protocol (form-encoded ``Action=...``, XML answers); requests are
told apart by their SigV4 credential scope (service ``iam``).
"""

from __future__ import annotations

import re
import uuid

from homeport.api.query_protocol import action_of, error_xml, read_params, send_xml
from homeport.api.runtime_api import ASGIApp, Receive, Scope, Send
from homeport.api.sts import USER

NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"
_ACTION = re.compile(r"[A-Za-z0-9]{1,128}")


def build_iam_app(account: str) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(uuid.uuid4())
        action = action_of(await read_params(scope, receive) or {})
        if not _ACTION.fullmatch(action):
            action = "*"
        message = (
            f"User: arn:aws:iam::{account}:user/{USER} is not authorized to perform: iam:{action} "
            "(Homeport has no IAM: roles are accepted as given and not checked)"
        )
        await send_xml(send, 403, error_xml(NAMESPACE, "AccessDenied", message, request_id), request_id)

    return app
