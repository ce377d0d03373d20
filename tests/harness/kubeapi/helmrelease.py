"""Helm release records as stored in the simulator: read them, and leave one in a pending state.

Helm (3 and 4, storage driver "secret") keeps each revision in a Secret ``sh.helm.release.v1.<name>.v<N>``
labelled owner=helm, name=<name>, status=<status>, version=<N>; ``data.release`` is base64 (the Secret
encoding) of base64(gzip(JSON release)). ``helm upgrade`` refuses to run while the latest revision's
``info.status`` is pending-install/pending-upgrade/pending-rollback ("another operation
(install/upgrade/rollback) is in progress").
"""

from __future__ import annotations

import base64
import gzip
import json

from .store import Store

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")


def decode_release(secret: dict) -> dict:
    blob = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    return json.loads(blob)


def encode_release(release: dict) -> str:
    inner = base64.b64encode(gzip.compress(json.dumps(release).encode())).decode()
    return base64.b64encode(inner.encode()).decode()


def release_secrets(store: Store, name: str, namespace: str) -> list[dict]:
    """The release's Secrets, oldest revision first."""
    items = store.list("v1", "Secret", namespace, label_selector={"owner": "helm", "name": name})
    return sorted(items, key=lambda s: int(s["metadata"]["labels"].get("version", 0)))


def read_release(store: Store, name: str, namespace: str, revision: int | None = None) -> dict:
    secrets = release_secrets(store, name, namespace)
    if not secrets:
        raise LookupError(f"no helm release {name!r} in namespace {namespace!r}")
    if revision is None:
        return decode_release(secrets[-1])
    for s in secrets:
        if int(s["metadata"]["labels"]["version"]) == revision:
            return decode_release(s)
    raise LookupError(f"release {name!r} has no revision {revision}")


def set_release_status(
    store: Store, name: str, namespace: str, status: str = "pending-upgrade", revision: int | None = None
) -> dict:
    """Rewrite a revision's status (label and ``info.status`` in the blob); latest revision by default."""
    secrets = release_secrets(store, name, namespace)
    if not secrets:
        raise LookupError(f"no helm release {name!r} in namespace {namespace!r}")
    target = (
        secrets[-1]
        if revision is None
        else next(s for s in secrets if int(s["metadata"]["labels"]["version"]) == revision)
    )
    release = decode_release(target)
    release.setdefault("info", {})["status"] = status
    target["data"]["release"] = encode_release(release)
    target["metadata"]["labels"]["status"] = status
    return store.update(target, field_manager="kubeapi-sim-fault")
