"""A kubeconfig that points helm, kubectl and the kubernetes client at the simulator."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

CONTEXT = "kubeapi-sim"
TOKEN = "kubeapi-sim-token"  # not checked: the simulator does no authentication


def write_kubeconfig(path: str | Path, server_url: str, namespace: str = "default") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": CONTEXT, "cluster": {"server": server_url}}],
        "users": [{"name": CONTEXT, "user": {"token": TOKEN}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}
        ],
        "current-context": CONTEXT,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.chmod(tmp, 0o600)  # helm warns about group/world-readable kubeconfigs
    tmp.replace(path)
    return path
