"""Fixtures of the cloud end-to-end suite: each cloud's emulator with the Kubernetes API simulator as its
cluster, the real deploy/teardown flows on a Prefect test server.

- AWS (eks, ecs): moto in server mode on 127.0.0.1 (tests/integration/providers/moto_main.py), started once for
  the suite with MOTO_ECS_SERVICE_RUNNING=1 so ECS services report their one task running (moto runs no
  containers); fresh state (POST /moto-api/reset) per test.
- GKE / AKS: FakeGke / FakeAks (tests/harness) with ``kube_server`` = the simulator's URL.
- EKS: moto's cluster endpoint is fake, so the provider's kube_access is wrapped to hand out the simulator's URL
  (dataclasses.replace of the ClusterRef); the token is still signed the way ``aws eks get-token`` does it.
- One simulator (every controller + the process runtime: real Dynamo frontend and mocker processes) for the
  module, with the real helm and kubectl (tests/integration/kube/conftest.py).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.domain.waiting import Waits
from runtime.providers import get_provider
from tests.harness.fake_aks import FakeAks
from tests.harness.fake_gke import FakeGke
from tests.integration.kube.conftest import chart_env, start_cluster, stop_cluster  # noqa: F401 - fixture
from tests.integration.providers.conftest import running_moto

ROOT = Path(__file__).resolve().parents[3]
FAST = Waits(poll_s=0.02, timeout_s=30.0)
# What each managed cluster ships that the simulator does not have: the clouds' built-in StorageClasses.
BUILTIN_CLASSES = {
    "eks": [],
    "gke": ["standard-rwo", "standard-rwx"],
    "aks": ["managed-csi", "azurefile-csi"],
}


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # ECS services report their task running, so rollouts can wait for them
    with running_moto(
        tmp_path_factory.mktemp("moto-clouds") / "moto.log", {"MOTO_ECS_SERVICE_RUNNING": "1"}
    ) as url:
        yield url


@pytest.fixture(scope="session")
def boto_session() -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


@pytest.fixture
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    urllib.request.urlopen(
        urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=30
    ).read()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_EKS", "AWS_ENDPOINT_URL_ECS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (
        ("AWS_ENDPOINT_URL", moto_url),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config")),
        ("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials")),
        ("AWS_RETRY_MODE", "standard"),
        ("AWS_MAX_ATTEMPTS", "6"),
    ):
        monkeypatch.setenv(name, value)
    return moto_url


@pytest.fixture(scope="module")
def sim(tmp_path_factory, chart_env):  # noqa: F811 - the imported fixture
    sim = start_cluster(tmp_path_factory, process_runtime=True)
    yield sim
    stop_cluster(sim)


@pytest.fixture(autouse=True)
def dynadeploy_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The deployments' state dirs (cluster.json, kubeconfig) under the test's tmp dir."""
    monkeypatch.setenv("DYNADEPLOY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def cloud_doc(kind: str, name: str, **changes: Any) -> dict:
    """infra/targets/<kind>.yaml made to run on the emulators: the built-in model with the mocker engine (the
    simulator has no real GPUs), a short smoke test, no teardown on failure (the kill test inspects what is left)."""
    doc = yaml.safe_load((ROOT / "infra" / "targets" / f"{kind}.yaml").read_text())
    doc["name"] = name
    doc["target"].pop("namespace", None)
    cache = (doc.get("model") or {}).get("cache")
    doc["model"] = {"cache": {**cache, "size": "1Gi"}} if cache else {}
    doc["serving"] = {"topology": "agg", "engine": "mocker"}
    doc["smoke"] = {"requests": 12, "concurrency": 4, "max_tokens": 8}
    doc["teardown"] = {"on_failure": False}
    for key, value in changes.items():
        doc[key] = value
    return doc


class Cloud:
    """One cloud's emulator wired to the simulator, and the provider instance the backends use."""

    def __init__(self, kind: str, provider: Any, server: Any = None) -> None:
        self.kind, self.provider, self.server = kind, provider, server


@pytest.fixture
def cloud_for(request: pytest.FixtureRequest, sim, monkeypatch: pytest.MonkeyPatch):
    """cloud_for(kind) -> Cloud: the emulator started, runtime.providers.access.make_provider answering with a
    fast-polling provider on it, the cloud's built-in StorageClasses in the simulator."""
    from runtime.providers import access

    made: list[Any] = []

    def make(kind: str) -> Cloud:
        if kind in ("eks", "ecs"):
            request.getfixturevalue("aws_env")
            provider = get_provider(kind, waits=FAST, session=request.getfixturevalue("boto_session"))
            server = None
            if kind == "eks":
                real = type(provider).kube_access

                def kube_access(self, ref):  # moto's EKS endpoint is fake: the simulator is the API server
                    return real(self, replace(ref, endpoint=sim.url, ca_data=None))

                monkeypatch.setattr(type(provider), "kube_access", kube_access)
        else:
            server = (FakeGke if kind == "gke" else FakeAks)(kube_server=sim.url, ca_data=None).start()
            made.append(server)
            monkeypatch.setenv(
                "DYNADEPLOY_GKE_ENDPOINT" if kind == "gke" else "DYNADEPLOY_AKS_ENDPOINT", server.url
            )
            provider = (
                get_provider(kind, waits=FAST, retry_initial_s=0.02)
                if kind == "gke"
                else get_provider(kind, waits=FAST, polling_interval=0.01, retry_total=6)
            )
        monkeypatch.setattr(access, "make_provider", lambda k: provider)
        for name in BUILTIN_CLASSES.get(kind, []):
            if sim.store.try_get("storage.k8s.io/v1", "StorageClass", name) is None:
                sim.store.create(
                    {
                        "apiVersion": "storage.k8s.io/v1",
                        "kind": "StorageClass",
                        "metadata": {"name": name},
                        "provisioner": f"{kind}.csi.example/{name}",
                        "volumeBindingMode": "Immediate",
                    }
                )
        return Cloud(kind, provider, server)

    yield make
    for server in made:
        server.stop()
