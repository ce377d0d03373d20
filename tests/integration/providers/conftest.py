"""Fixtures of the provider contract suite: one ``cloud`` per provider, each against its emulator.

- eks, ecs: moto in server mode (a subprocess on 127.0.0.1 started once per session, see moto_main.py)
  behind AwsFaultProxy; AWS_ENDPOINT_URL points at the proxy; POST /moto-api/reset before each test.
- gke, aks: FakeGke / FakeAks (tests/harness), a fresh one per test; DYNADEPLOY_GKE_ENDPOINT /
  DYNADEPLOY_AKS_ENDPOINT point at it.
Every ``cloud`` has the same surface: provider, spec, faults (fake_cloud.Faults), mutations(),
mark(), provision(), teardown(), inventory(), shape().
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runtime.domain.waiting import Waits
from runtime.providers import get_provider
from runtime.spec import DeploymentSpec, load_spec
from tests.harness.fake_aks import FakeAks
from tests.harness.fake_cloud import Faults
from tests.harness.fake_gke import FakeGke
from tests.integration.providers.aws_proxy import AwsFaultProxy

ROOT = Path(__file__).resolve().parents[3]
KINDS = ["eks", "ecs", "gke", "aks"]
FAST = Waits(poll_s=0.01, timeout_s=20.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_moto(log: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """moto_server on a free 127.0.0.1 port (MOTO_IAM_LOAD_MANAGED_POLICIES=true); yields its URL and
    stops it on exit. Shared by the provider and the cloud end-to-end suites."""
    port = _free_port()
    env = {
        **os.environ,
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.providers.moto_main", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto_server on 127.0.0.1 (MOTO_IAM_LOAD_MANAGED_POLICIES=true), for the whole session."""
    with running_moto(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(scope="session")
def aws_proxy(moto_url: str) -> Iterator[AwsFaultProxy]:
    proxy = AwsFaultProxy(moto_url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def aws(
    moto_url: str, aws_proxy: AwsFaultProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AwsFaultProxy:
    """Fresh moto state, AWS env pointing at the fault proxy, no local AWS config leaking in."""
    urllib.request.urlopen(
        urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=30
    ).read()
    aws_proxy.faults.clear()
    aws_proxy.requests.clear()
    aws_proxy.authorizations.clear()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_EKS", "AWS_ENDPOINT_URL_ECS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "6")
    return aws_proxy


@pytest.fixture(scope="session")
def boto_session() -> Any:
    """One boto3 Session for the suite: clients of new providers reuse its parsed service models
    (2-3 s per test otherwise). Endpoint and retry settings still come from the environment."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


@dataclass
class Cloud:
    kind: str
    provider: Any
    spec: DeploymentSpec
    server: Any  # AwsFaultProxy | FakeGke | FakeAks
    refs: list[Any] = field(default_factory=list)

    @property
    def faults(self) -> Faults:
        return self.server.faults

    def mark(self) -> None:
        self.server.requests.clear()

    def mutations(self) -> list[str]:
        if isinstance(self.server, AwsFaultProxy):
            return self.server.mutations()
        return [f"{m} {p}" for m, p in self.server.requests if m not in ("GET", "HEAD")]

    def provision(self) -> Any:
        """Everything a deploy asks of the provider before the kube stages (ECS: its serving too)."""
        ref = self.provider.ensure_cluster(self.spec)
        self.provider.ensure_gpu_nodes(self.spec, ref)
        storage = self.provider.storage_class(self.spec, ref)
        if self.kind == "ecs":
            self.provider.serving().deploy(self.spec, ref, secrets={"HF_TOKEN": "hf_test_value"})
        self.refs.append((ref, storage))
        return ref

    def teardown(self) -> None:
        self.provider.delete_cluster(self.spec)

    def inventory(self) -> list[str]:
        return self.provider.inventory(self.spec)

    def shape(self) -> Counter:
        """Resource types and how many of each: what must not change when faults force retries."""
        return Counter(item.split("/", 1)[0] for item in self.inventory())


@pytest.fixture(scope="session")
def reference_shapes() -> dict[str, tuple[Counter, int]]:
    """kind -> (inventory shape, calls) of a clean provision (filled by whichever test needs it first)."""
    return {}


def make_provider(kind: str, session: Any = None) -> Any:
    if kind in ("eks", "ecs"):
        return get_provider(kind, waits=FAST, session=session)
    if kind == "gke":
        return get_provider(kind, waits=FAST, retry_initial_s=0.02)
    return get_provider(kind, waits=FAST, polling_interval=0.01, retry_total=6)


@pytest.fixture(params=KINDS)
def cloud(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    kind = request.param
    spec = load_spec(ROOT / "infra" / "targets" / f"{kind}.yaml")
    if kind in ("eks", "ecs"):
        server = request.getfixturevalue("aws")
        yield Cloud(kind, make_provider(kind, request.getfixturevalue("boto_session")), spec, server)
        return
    fake = (FakeGke() if kind == "gke" else FakeAks()).start()
    monkeypatch.setenv("DYNADEPLOY_GKE_ENDPOINT" if kind == "gke" else "DYNADEPLOY_AKS_ENDPOINT", fake.url)
    try:
        yield Cloud(kind, make_provider(kind), spec, fake)
    finally:
        fake.stop()
