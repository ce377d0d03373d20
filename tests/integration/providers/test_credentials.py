"""Cloud credentials from Prefect blocks, for real: the blocks are saved on a real Prefect test server
(stand-in block classes with the slugs and fields of prefect-aws/-gcp/-azure: tests/harness/
credential_blocks.py), resolved by tasks/secrets.resolve_cloud_credentials, and every provider call then
goes out with them:

- eks, ecs on moto behind the fault proxy, which records the SigV4 Authorization of every request: every
  call (IAM, EC2, EKS, ECS, Cloud Map, SSM) is signed with the block's access key id, not the worker's
  environment's; the EKS kubeconfig's token is signed with it too; neither the kubeconfig nor cluster.json
  holds the secret key. (moto checks no signature, so a wrong secret is not refused here.)
- gke on FakeGke, which plays Google's token endpoint for a service account it made: the container
  client gets a token by the JWT grant signed with the block's private key, and the fake refuses (401)
  any API call without a token it issued; the kubeconfig token is that account's.
- aks on FakeAks with FakeEntra (an https token service): ClientSecretCredential from the block gets a
  token for the block's client id and secret, FakeAks refuses any ARM call without one; a block with a
  wrong secret fails with Entra's reason and without the secret.
- a missing block is a PermanentError naming the block type and how to create it.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from runtime.errors import PermanentError
from runtime.gateways import eks_token as _eks_token
from runtime.providers import get_provider
from runtime.spec import parse_spec
from runtime.targets.cloud.backend import CloudBackend
from tasks.secrets import resolve_cloud_credentials
from tests.harness.credential_blocks import AwsCredentials, AzureContainerInstanceCredentials, GcpCredentials
from tests.harness.fake_aks import FakeAks
from tests.harness.fake_entra import FakeEntra
from tests.harness.fake_gke import FakeGke, keep_google_auth_local
from tests.integration.providers.conftest import FAST, ROOT

pytestmark = pytest.mark.integration

KEY_ID = "AKIADYNADEPLOYBLOCK1"


def spec_with_block(kind: str, block: str):
    doc = yaml.safe_load((ROOT / "infra" / "targets" / f"{kind}.yaml").read_text())
    doc["target"]["credentials"] = {"block": block}
    return parse_spec(doc, source="test")


def files_under(path: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("kind", ["eks", "ecs"])
def test_every_aws_call_is_signed_with_the_blocks_key(prefect_api, aws, kind, tmp_path, monkeypatch):
    secret_key = f"dynadeploy-block-secret-{secrets.token_hex(8)}"
    AwsCredentials(aws_access_key_id=KEY_ID, aws_secret_access_key=secret_key, region_name="eu-west-3").save(
        f"{kind}-creds", overwrite=True
    )
    spec = spec_with_block(kind, f"{kind}-creds")
    monkeypatch.setenv("DYNADEPLOY_HOME", str(tmp_path / "home"))
    creds = resolve_cloud_credentials(spec)
    assert creds.access_key_id == KEY_ID and secret_key not in repr(creds)
    provider = get_provider(kind, waits=FAST, credentials=creds)

    ref = provider.ensure_cluster(spec)
    provider.ensure_gpu_nodes(spec, ref)
    if kind == "eks":
        backend = CloudBackend(spec, provider=provider)
        backend._save(ref=asdict(ref))
        backend._write_access(ref)  # the kubeconfig, with the EKS token
        kubeconfig = yaml.safe_load(backend.kubeconfig_path.read_text())
        url = _eks_token.decode(kubeconfig["users"][0]["user"]["token"])
        assert f"X-Amz-Credential={KEY_ID}%2F" in url  # signed by the block's key (short-lived, fine to keep)
    else:
        from runtime.targets.ecs.backend import EcsBackend

        assert (
            EcsBackend(spec, provider=provider).revisions() == []
        )  # the SSM ledger, read with the block's key
    inventory = provider.inventory(spec)
    provider.delete_cluster(spec)

    assert inventory and len(aws.authorizations) > 20
    assert aws.key_ids() == {KEY_ID}, (
        "a call went out with other credentials (the worker's env has 'testing')"
    )
    state = files_under(tmp_path / "home")
    assert kind != "eks" or any(p.endswith("kubeconfig") for p in state)
    assert not [p for p, data in state.items() if secret_key.encode() in data]


def test_gke_calls_carry_a_token_of_the_blocks_service_account(prefect_api, monkeypatch):
    keep_google_auth_local(monkeypatch)
    with FakeGke() as fake:
        monkeypatch.setenv("DYNADEPLOY_GKE_ENDPOINT", fake.url)
        email = "deployer@dynadeploy-test.iam.gserviceaccount.com"
        key = fake.service_account(email)
        fake.require_tokens()
        spec = spec_with_block("gke", "gke-creds")

        anonymous = get_provider("gke", waits=FAST, retry_initial_s=0.02)  # no block: the fake refuses it
        plain = parse_spec(
            {
                **spec.canonical_dict(),
                "target": {k: v for k, v in spec.canonical_dict()["target"].items() if k != "credentials"},
            },
            source="test",
        )
        with pytest.raises(PermanentError, match=r"credentials|401"):
            anonymous.ensure_cluster(plain)
        assert fake.authorizations and not fake.clusters

        GcpCredentials(service_account_info=key, project="dynadeploy-test").save("gke-creds", overwrite=True)
        provider = get_provider(
            "gke", waits=FAST, retry_initial_s=0.02, credentials=resolve_cloud_credentials(spec)
        )
        fake.authorizations.clear()
        ref = provider.ensure_cluster(spec)
        provider.ensure_gpu_nodes(spec, ref)
        access = provider.kube_access(ref)
        provider.delete_cluster(spec)

        assert len(fake.authorizations) > 5
        # every API call: a JWT self-signed with the block's key (google-cloud-container's always_use_jwt_access)
        assert {fake.identity(a) for a in fake.authorizations} == {email}
        # the kubeconfig's token: an OAuth access token from the JWT grant, signed with the same key
        assert fake.requests.count("POST", "^/token$") >= 1 and fake.issued[access.token] == email


def test_aks_calls_carry_a_token_of_the_blocks_service_principal(prefect_api, monkeypatch):
    tenant, client_id, secret = "tenant-dd", "app-dd", f"dynadeploy-sp-secret-{secrets.token_hex(8)}"
    with FakeEntra() as entra, FakeAks() as fake:
        entra.add_app(tenant, client_id, secret)
        fake.authorize = lambda header: entra.issued.get(header.removeprefix("Bearer ")) == client_id
        monkeypatch.setenv("DYNADEPLOY_AKS_ENDPOINT", fake.url)
        spec = spec_with_block("aks", "aks-creds")

        AzureContainerInstanceCredentials(
            client_id=client_id,
            tenant_id=tenant,
            client_secret=secret + "-wrong",
            credential_kwargs=entra.credential_kwargs(),
        ).save("aks-creds", overwrite=True)
        wrong = get_provider(
            "aks",
            waits=FAST,
            polling_interval=0.01,
            retry_total=2,
            credentials=resolve_cloud_credentials(spec),
        )
        with pytest.raises(PermanentError) as caught:
            wrong.ensure_cluster(spec)
        assert "AADSTS7000215" in str(caught.value) and secret not in str(caught.value)

        AzureContainerInstanceCredentials(
            client_id=client_id,
            tenant_id=tenant,
            client_secret=secret,
            credential_kwargs=entra.credential_kwargs(),
        ).save("aks-creds", overwrite=True)
        provider = get_provider(
            "aks",
            waits=FAST,
            polling_interval=0.01,
            retry_total=6,
            credentials=resolve_cloud_credentials(spec),
        )
        fake.authorizations.clear()
        ref = provider.ensure_cluster(spec)
        provider.ensure_gpu_nodes(spec, ref)
        provider.kube_access(ref)
        provider.delete_cluster(spec)

        assert len(fake.authorizations) > 5
        assert {entra.issued.get(a.removeprefix("Bearer ")) for a in fake.authorizations} == {client_id}
        assert ("POST", f"/{tenant}/oauth2/v2.0/token") in entra.requests


@pytest.mark.parametrize(
    ("kind", "slug"),
    [("eks", "aws-credentials"), ("gke", "gcp-credentials"), ("aks", "azure-container-instance-credentials")],
)
def test_a_missing_block_names_its_type_and_how_to_create_it(prefect_api, kind, slug):
    GcpCredentials(project="other").save("only-a-gcp-block", overwrite=True)  # same name, another type
    name = "only-a-gcp-block" if kind != "gke" else "no-such-block"
    with pytest.raises(PermanentError) as caught:
        resolve_cloud_credentials(spec_with_block(kind, name))
    err = caught.value
    assert f"Prefect {slug} block {name!r}" in err.message and "not found" in err.message
    assert f"prefect block create {slug}" in err.hint and f"save({name!r})" in err.hint


def test_the_block_document_is_read_by_slug_with_its_secrets_and_nothing_else_is_kept(prefect_api):
    AwsCredentials(
        aws_access_key_id=KEY_ID, aws_secret_access_key="s3cr3t-value", aws_session_token="session-value"
    ).save("read-back", overwrite=True)
    creds = resolve_cloud_credentials(spec_with_block("ecs", "read-back"))
    assert (creds.secret_access_key.reveal(), creds.session_token.reveal()) == (
        "s3cr3t-value",
        "session-value",
    )
    assert "s3cr3t-value" not in repr(creds) and "session-value" not in repr(creds)
    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.deepcopy(creds)  # nothing (a Prefect result, a parameter) can take a copy of it
