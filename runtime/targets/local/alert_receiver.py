"""Alertmanager webhook -> Prefect events: the small receiver of a local deployment's alerts.

Run as a supervised program of the deployment (runtime/render/local_monitoring.py). Each alert of each
webhook call becomes one Prefect event

    dynadeploy.alert.<AlertName>            (firing)
    dynadeploy.alert.<AlertName>.resolved   (resolved)

whose resource is the target (``dynadeploy.target.<name>``, the resource every dynadeploy event uses)
with the alert's labels, and whose related resource is the revision serving when the alert arrived
(``dynadeploy.revision.<name>.<n>``, role ``revision``), read from the deployment's ledger. A Prefect
automation (infra/automations/slo-alert-rollback.yaml) can then start the target's rollback. Each alert
is also appended to ``monitoring/alerts.jsonl`` (what the tests and `dynadeploy status` read).

Listens on the loopback address it is given; stdlib HTTP server, one thread. Loopback is shared by every
user of the host, so a POST must carry ``Authorization: Bearer <token>`` with the token in
``--token-file`` (0600, in the deployment's state dir; Alertmanager sends it through its webhook's
``http_config.authorization.credentials_file``): anything else is refused with 401 and makes no event.
"""

from __future__ import annotations

import argparse
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from runtime.render.monitoring import event_name


def current_revision(state_root: Path) -> int | None:
    from runtime.domain.revisions import current
    from runtime.targets.local.ledger import FileLedger

    try:
        rev = current(FileLedger(state_root / "revisions").all())
    except (OSError, ValueError):
        return None
    return rev.number if rev else None


def rollback_deployment_id(name: str | None) -> str | None:
    """The id of the Prefect deployment ``flow/deployment`` (None when unset or not found)."""
    if not name:
        return None
    from prefect import get_client

    try:
        with get_client(sync_client=True) as client:
            return str(client.read_deployment_by_name(name).id)
    except Exception as exc:
        print(f"rollback deployment {name!r} not found: {exc}", flush=True)
        return None


def to_events(
    body: dict,
    deployment: str,
    revision: int | None,
    *,
    rollback_id: str | None = None,
    auto_rollback: bool = False,
) -> list[dict]:
    """Pure: the Prefect events (as emit_event keyword arguments) for one Alertmanager webhook body."""
    out = []
    for alert in body.get("alerts", []):
        labels = alert.get("labels", {})
        name = labels.get("alertname", "unknown")
        resource = {
            "prefect.resource.id": f"dynadeploy.target.{deployment}",
            "prefect.resource.name": deployment,
            "dynadeploy.alert": name,
            "dynadeploy.auto-rollback": str(auto_rollback).lower(),
        }
        resource |= {f"dynadeploy.alert.{k}": str(v) for k, v in labels.items() if k != "alertname"}
        related = []
        if rollback_id:  # what `run-deployment` with `source: inferred` starts
            related.append(
                {
                    "prefect.resource.id": f"prefect.deployment.{rollback_id}",
                    "prefect.resource.role": "rollback-deployment",
                }
            )
        if revision is not None:
            related.append(
                {
                    "prefect.resource.id": f"dynadeploy.revision.{deployment}.{revision}",
                    "prefect.resource.role": "revision",
                    "dynadeploy.revision": str(revision),
                }
            )
        out.append(
            {
                "event": event_name(name, alert.get("status", "firing")),
                "resource": resource,
                "related": related,
                "payload": {
                    "status": alert.get("status"),
                    "labels": labels,
                    "annotations": alert.get("annotations", {}),
                    "startsAt": alert.get("startsAt"),
                    "endsAt": alert.get("endsAt"),
                    "fingerprint": alert.get("fingerprint"),
                    "revision": revision,
                },
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--deployment", required=True)
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--no-events", action="store_true", help="only log the alerts, emit no Prefect events")
    ap.add_argument("--rollback-deployment", help="Prefect deployment 'flow/deployment' the events relate to")
    ap.add_argument("--auto-rollback", action="store_true", help="mark the events for the automatic rollback")
    ap.add_argument(
        "--token-file",
        type=Path,
        required=True,
        help="file holding the bearer token every POST must carry (what Alertmanager sends)",
    )
    args = ap.parse_args(argv)
    expected = f"Bearer {args.token_file.read_text().strip()}".encode()
    if len(expected) < len("Bearer ") + 16:
        ap.error(f"{args.token_file} holds no usable token")
    emit = None
    if not args.no_events:
        from prefect.events import emit_event
        from prefect.settings import PREFECT_API_URL

        if PREFECT_API_URL.value():
            emit = emit_event
        else:
            print("PREFECT_API_URL is not set: alerts are logged, not sent as Prefect events", flush=True)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            given = (self.headers.get("Authorization") or "").encode()
            if not hmac.compare_digest(given, expected):  # constant time: no token guessing by timing
                self.send_response(401)
                self.send_header("WWW-Authenticate", "Bearer")
                self.end_headers()
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            rollback_id = rollback_deployment_id(args.rollback_deployment) if emit is not None else None
            events = to_events(
                body,
                args.deployment,
                current_revision(args.state_dir),
                rollback_id=rollback_id,
                auto_rollback=args.auto_rollback,
            )
            args.log.parent.mkdir(parents=True, exist_ok=True)
            with args.log.open("a") as f:
                for ev in events:
                    sent = False
                    if emit is not None:
                        try:
                            sent = emit(**ev) is not None
                        except Exception as exc:
                            print(f"emit_event failed: {exc}", flush=True)
                    f.write(json.dumps({"received_at": time.time(), "sent": sent, **ev}) + "\n")
                    print(f"{ev['event']} revision={ev['payload']['revision']} sent={sent}", flush=True)
            self.send_response(200)
            self.end_headers()

        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, fmt: str, *a) -> None:
            pass

    server = HTTPServer((args.host, args.port), Handler)
    print(f"alert receiver for {args.deployment} on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
