"""A loopback proxy in front of moto that injects AWS faults (the way the provider tests fault AWS).

The providers run unchanged with AWS_ENDPOINT_URL pointing here; every request is forwarded to moto
unless a fault rule matches. Faults are answered *before* moto sees the request (as AWS's front end
throttles), in the wire format of the request's protocol so botocore parses them like AWS's own:

- throttling: JSON protocols (X-Amz-Target: ECS, Logs, Cloud Map, Secrets Manager, SSM) 400
  {"__type": "ThrottlingException"}; rest-json (EKS, EFS) 429 with x-amzn-ErrorType; query (EC2) 503
  RequestLimitExceeded; query (IAM, Auto Scaling, ELB, STS) 400 <Code>Throttling</Code>;
- 5xx: 503 with an empty body;
- kill_after(k): 400 ``KilledByTest`` (not retryable) for everything after the k-th request.

Requests are logged as (method, operation), the operation being the X-Amz-Target or Action name, or
"<METHOD> <path>" for rest protocols; ``mutations()`` counts the ones that change state.
"""

from __future__ import annotations

import http.client
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.harness.fake_cloud import FakeServer, authorization

_READ = re.compile(r"^(Describe|List|Get|Search|Head|Lookup)")
_KEY_ID = re.compile(r"Credential=([^/]+)/")
_SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")


def operation(method: str, target: str, raw: bytes, headers: dict[str, str]) -> tuple[str, str, str]:
    """(service, operation, protocol) of a signed AWS request."""
    lower = {k.lower(): v for k, v in headers.items()}
    scope = _SCOPE.search(lower.get("authorization", ""))
    service = scope.group(1) if scope else "?"
    if "x-amz-target" in lower:
        return service, lower["x-amz-target"].rsplit(".", 1)[-1], "json"
    if lower.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(raw.decode(errors="replace")).get("Action", ["?"])[0]
        return service, action, "query"
    query_action = parse_qs(urlsplit(target).query).get("Action")
    if query_action:
        return service, query_action[0], "query"
    return service, f"{method} {urlsplit(target).path}", "rest"


def is_mutation(op: str) -> bool:
    if " " in op:  # rest protocols
        return not op.startswith(("GET ", "HEAD "))
    return not _READ.match(op)


class AwsFaultProxy(FakeServer):
    def __init__(self, upstream: str) -> None:
        super().__init__()
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)

    def key_ids(self) -> set[str]:
        """The access key ids that signed the requests seen (SigV4 ``Credential=<key id>/...``)."""
        return {m.group(1) for a in self.authorizations if (m := _KEY_ID.search(a))}

    def mutations(self) -> list[str]:
        return [op for _, op in self.requests if is_mutation(op)]

    def respond(
        self, method: str, target: str, raw: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, dict]:
        service, op, protocol = operation(method, target, raw, headers)
        self.requests.append((method, op))
        self.authorizations.append(authorization(headers))
        fault = self.faults.pick(method, op)
        if fault is not None:
            return self._fault(service, protocol, fault.status, fault.killed)
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request(
                method,
                target,
                body=raw or None,
                headers={k: v for k, v in headers.items() if k.lower() not in ("connection", "keep-alive")},
            )
            response = conn.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            conn.close()

    def _fault(
        self, service: str, protocol: str, status: int, killed: bool
    ) -> tuple[int, bytes, dict[str, Any]]:
        if status >= 500 and not killed:
            return status, b"", {"Content-Type": "text/plain"}
        code = "KilledByTest" if killed else None
        if protocol == "json":
            body = {
                "__type": code or "ThrottlingException",
                "message": "Rate exceeded" if not killed else code,
            }
            return 400, json.dumps(body).encode(), {"Content-Type": "application/x-amz-json-1.1"}
        if protocol == "rest":
            return (
                (400 if killed else 429),
                json.dumps({"message": code or "Rate exceeded"}).encode(),
                {"x-amzn-ErrorType": code or "ThrottlingException", "Content-Type": "application/json"},
            )
        if service == "ec2":
            xml = (
                f"<Response><Errors><Error><Code>{code or 'RequestLimitExceeded'}</Code><Message>injected"
                "</Message></Error></Errors><RequestID>fault</RequestID></Response>"
            )
            return (400 if killed else 503), xml.encode(), {"Content-Type": "text/xml"}
        xml = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code or 'Throttling'}</Code><Message>injected"
            "</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
        )
        return 400, xml.encode(), {"Content-Type": "text/xml"}
