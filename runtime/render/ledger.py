"""A Revision <-> the labelled ConfigMap that keeps it in the cluster.

Any worker anywhere can list a deployment's revisions by label and restore one, so the ConfigMap
holds everything the Revision holds. A ConfigMap is capped at 1 MiB: when the JSON is large, the
rendered manifests (the bulk) move into ``binaryData`` gzip-compressed (the API server base64-encodes
binaryData, so it is written base64 here); a record that is still too large is refused with the fix
rather than truncated. A revision holds no secret values: the spec only references secrets and
renderers never write secret data.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any, NamedTuple

from runtime.domain import naming
from runtime.domain.revisions import Revision
from runtime.errors import PermanentError
from runtime.render import common

DATA_KEY = "revision.json"
RENDERED_KEY = "rendered.json.gz"
STATUS_KEY = "dynadeploy.io/status"
MAX_BYTES = 1024 * 1024  # the API server's limit for one ConfigMap
INLINE_LIMIT = 256 * 1024  # above this, the rendered manifests are compressed
_HEADROOM = 16 * 1024  # metadata, labels, annotations


class _Named(NamedTuple):
    """The one field of a spec naming's helpers read (the Revision holds the spec as a dict)."""

    name: str


def _dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_name(revision: Revision) -> str:
    return naming.ledger_name(_Named(_deployment(revision)), revision.number)


def _deployment(revision: Revision) -> str:
    name = (revision.spec or {}).get("name")
    if not isinstance(name, str) or not name:
        raise PermanentError(
            f"revision {revision.number} has no spec name, so it cannot be stored",
            hint="record revisions from a validated spec (spec.canonical_dict())",
        )
    return name


def render_revision_record(revision: Revision, namespace: str) -> dict[str, Any]:
    """The ConfigMap holding ``revision`` (labelled managed-by / deployment / revision)."""
    name = _deployment(revision)
    labels = naming.labels(name, **{naming.REVISION_KEY: str(revision.number)})
    cm: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": record_name(revision),
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                common.SPEC_HASH_ANNOTATION: revision.spec_hash,
                common.REVISION_ANNOTATION: str(revision.number),
                STATUS_KEY: revision.status,
            },
        },
        "data": {DATA_KEY: _dumps(revision.as_dict())},
    }
    if len(cm["data"][DATA_KEY].encode()) > INLINE_LIMIT:
        body = revision.as_dict()
        rendered = body.pop("rendered")
        body["rendered"] = {"$ref": RENDERED_KEY}
        packed = base64.b64encode(gzip.compress(_dumps(rendered).encode(), mtime=0)).decode()
        cm["data"] = {DATA_KEY: _dumps(body)}
        cm["binaryData"] = {RENDERED_KEY: packed}
    size = sum(len(v.encode()) for part in ("data", "binaryData") for v in cm.get(part, {}).values())
    if size > MAX_BYTES - _HEADROOM:
        raise PermanentError(
            f"revision {revision.number} of {name} is {size} bytes even compressed; a ConfigMap holds "
            "at most 1 MiB",
            hint="keep large artifacts (logs, full reports) out of the revision's smoke/analysis fields",
        )
    return cm


def parse_revision_record(cm: dict[str, Any]) -> Revision:
    """The Revision a ConfigMap from ``render_revision_record`` holds (as read back from the API)."""
    data = cm.get("data") or {}
    if DATA_KEY not in data:
        name = (cm.get("metadata") or {}).get("name", "?")
        raise PermanentError(
            f"ConfigMap {name} is not a dynadeploy revision record (no {DATA_KEY})",
            hint="select revision records by the dynadeploy.io/revision label",
        )
    body = json.loads(data[DATA_KEY])
    if isinstance(body.get("rendered"), dict) and body["rendered"].get("$ref") == RENDERED_KEY:
        packed = (cm.get("binaryData") or {})[RENDERED_KEY]
        body["rendered"] = json.loads(gzip.decompress(base64.b64decode(packed)))
    return Revision.from_dict(body)
