"""An EKS bearer token, made the way `aws eks get-token` makes it (no aws CLI, no exec plugin).

The token is ``k8s-aws-v1.`` + base64url (unpadded) of a presigned STS GetCallerIdentity URL whose
signature covers the ``x-k8s-aws-id: <cluster name>`` header. EKS's authenticator replays the URL to
learn who is calling; the presigned URL is valid 60 s and EKS accepts the token for 15 minutes, so
the CLI (and this module) report an expiry 14 minutes out.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from runtime.gateways.aws import translate

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
URL_TIMEOUT_S = 60
TOKEN_LIFETIME_S = 14 * 60


def _retrieve_cluster_id(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if CLUSTER_ID_HEADER in params:
        context[CLUSTER_ID_HEADER] = params.pop(CLUSTER_ID_HEADER)


def _inject_cluster_id(request: Any, **_: Any) -> None:
    if CLUSTER_ID_HEADER in request.context:
        request.headers[CLUSTER_ID_HEADER] = request.context[CLUSTER_ID_HEADER]


def presigned_url(session: Any, region: str, cluster_name: str, config: Any = None) -> str:
    """The presigned GetCallerIdentity URL (regional STS endpoint, or AWS_ENDPOINT_URL when set)."""
    sts = session.client("sts", region_name=region, config=config)
    sts.meta.events.register("provide-client-params.sts.GetCallerIdentity", _retrieve_cluster_id)
    sts.meta.events.register("before-sign.sts.GetCallerIdentity", _inject_cluster_id)
    try:
        return sts.generate_presigned_url(
            "get_caller_identity",
            Params={CLUSTER_ID_HEADER: cluster_name},
            ExpiresIn=URL_TIMEOUT_S,
            HttpMethod="GET",
        )
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, "signing the EKS token") from exc


def encode(url: str) -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def decode(token: str) -> str:
    """The presigned URL inside a token (for tests and diagnostics)."""
    body = token.removeprefix(TOKEN_PREFIX)
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def get_token(session: Any, region: str, cluster_name: str, config: Any = None) -> tuple[str, float]:
    """(token, expiry as epoch seconds)."""
    return encode(presigned_url(session, region, cluster_name, config)), time.time() + TOKEN_LIFETIME_S
