"""Opt-in: the provider contract against real clouds (costs money; creates and deletes real clusters).

Skipped unless DYNADEPLOY_E2E=1 and the cloud's credentials are present:
  eks, ecs  AWS_PROFILE or AWS_ACCESS_KEY_ID (+ secret); region DYNADEPLOY_E2E_AWS_REGION (us-east-1)
  gke       GOOGLE_APPLICATION_CREDENTIALS and DYNADEPLOY_E2E_GCP_PROJECT; DYNADEPLOY_E2E_GCP_LOCATION
            (us-central1-a)
  aks       AZURE_SUBSCRIPTION_ID and AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET (or az login
            with AZURE_SUBSCRIPTION_ID); DYNADEPLOY_E2E_AZURE_LOCATION (eastus2)
By default each cluster gets one small CPU node pool; DYNADEPLOY_E2E_GPU=1 uses the example target's
GPU pools (infra/targets/<kind>.yaml) instead. ECS always needs a GPU instance type (its AMI is the
GPU-optimized one): DYNADEPLOY_E2E_ECS_INSTANCE (g6e.xlarge), serving the mocker engine.

Each test: provision, a second ensure that must leave the inventory unchanged, the cluster API's
/version through kube_access (EKS/GKE/AKS), then delete (also when the test fails) and an empty
inventory. Unlike the emulators, real clouds take 10-20 minutes per cluster each way.
"""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.request
from base64 import b64decode
from pathlib import Path

import pytest

from runtime.providers import get_provider
from runtime.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(7200)]
RUN = f"{int(time.time()) % 100000:05d}"
SMALL = {"eks": "m5.large", "gke": "e2-standard-4", "aks": "Standard_D4s_v5"}


def _need(kind: str) -> None:
    if os.environ.get("DYNADEPLOY_E2E") != "1":
        pytest.skip("set DYNADEPLOY_E2E=1 to run real-cloud tests (they create billable resources)")
    env = os.environ
    missing = {
        "eks": not (env.get("AWS_PROFILE") or env.get("AWS_ACCESS_KEY_ID")),
        "ecs": not (env.get("AWS_PROFILE") or env.get("AWS_ACCESS_KEY_ID")),
        "gke": not (env.get("GOOGLE_APPLICATION_CREDENTIALS") and env.get("DYNADEPLOY_E2E_GCP_PROJECT")),
        "aks": not env.get("AZURE_SUBSCRIPTION_ID"),
    }[kind]
    if missing:
        pytest.skip(f"no credentials for {kind} (see this module's docstring)")


def _spec(kind: str):
    data = load_spec(ROOT / "infra" / "targets" / f"{kind}.yaml").canonical_dict()
    target = data["target"]
    data["name"] = f"dd-e2e-{kind}-{RUN}"
    target["cluster_name"] = f"dd-e2e-{RUN}"
    if kind in ("eks", "ecs"):
        target["region"] = os.environ.get("DYNADEPLOY_E2E_AWS_REGION", "us-east-1")
    if kind == "gke":
        target.update(
            project=os.environ["DYNADEPLOY_E2E_GCP_PROJECT"],
            location=os.environ.get("DYNADEPLOY_E2E_GCP_LOCATION", "us-central1-a"),
        )
    if kind == "aks":
        target.update(
            subscription_id=os.environ["AZURE_SUBSCRIPTION_ID"],
            resource_group=f"dd-e2e-{RUN}-rg",
            location=os.environ.get("DYNADEPLOY_E2E_AZURE_LOCATION", "eastus2"),
        )
    if kind == "ecs":
        target.update(
            fargate_cluster_name=f"dd-e2e-{RUN}-fargate",
            instance_type=os.environ.get("DYNADEPLOY_E2E_ECS_INSTANCE", "g6e.xlarge"),
        )
        data["serving"] = {"topology": "agg", "engine": "mocker", "workers": {"replicas": 1, "gpus": 0}}
    elif os.environ.get("DYNADEPLOY_E2E_GPU") != "1":
        target["node_pools"] = [
            {"name": "system", "instance_type": SMALL[kind], "min": 1, "desired": 1, "max": 1}
        ]
        data["serving"] = {"topology": "agg", "engine": "mocker", "workers": {"replicas": 1, "gpus": 0}}
        data["model"] = {
            "id": data["model"]["id"],
            "revision": data["model"]["revision"],
            "cache": {"size": "20Gi", "access_mode": "ReadWriteOnce"},
        }
    return parse_spec(data)


def _version(access, tmp_path: Path) -> dict:
    context = ssl.create_default_context()
    if access.ca_data:
        ca = tmp_path / "ca.pem"
        ca.write_bytes(b64decode(access.ca_data))
        context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(f"{access.server.rstrip('/')}/version")
    if access.token:
        request.add_header("Authorization", f"Bearer {access.token}")
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("kind", ["eks", "gke", "aks", "ecs"])
def test_real_cloud_provision_access_teardown(kind, tmp_path, monkeypatch):
    _need(kind)
    for name in ("AWS_ENDPOINT_URL", "DYNADEPLOY_GKE_ENDPOINT", "DYNADEPLOY_AKS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    spec = _spec(kind)
    provider = get_provider(kind)
    try:
        ref = provider.ensure_cluster(spec)
        provider.ensure_gpu_nodes(spec, ref)
        provider.storage_class(spec, ref)
        if kind == "ecs":
            provider.serving().deploy(spec, ref, secrets={"HF_TOKEN": os.environ.get("HF_TOKEN", "unused")})
        first = provider.inventory(spec)
        assert first
        provider.ensure_gpu_nodes(spec, provider.ensure_cluster(spec))
        assert provider.inventory(spec) == first
        if kind != "ecs":
            access = provider.kube_access(ref)
            access.write_kubeconfig(tmp_path / "kubeconfig")
            assert _version(access, tmp_path)["major"] == "1"
    finally:
        provider.delete_cluster(spec)
    assert provider.inventory(spec) == []
