"""Cloud credentials from Prefect blocks, without a server: the spec field (target.credentials), the block
data -> typed credentials mapping (runtime/domain/credentials.py), the typed credentials -> SDK credential objects
(the gateways' session_for / service_account_credentials / azure_credential, built without any network
call), and how backends get them (runtime/targets/registry.py, runtime/targets/cloud/backend.py)."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest
import yaml

from runtime.domain import credentials as creds
from runtime.domain import naming
from runtime.errors import PermanentError, SpecError
from runtime.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYdynadeployKEY"  # must never show up in any message
KEY_ID = "AKIADYNADEPLOYTEST01"


def doc(kind: str, credentials=None) -> dict:
    data = yaml.safe_load((ROOT / "infra" / "targets" / f"{kind}.yaml").read_text())
    if credentials is not None:
        data["target"]["credentials"] = credentials
    return data


def spec_error(data: dict) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, source="test")
    return caught.value


# --- the spec field ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "block_type"),
    [
        ("eks", "aws-credentials"),
        ("ecs", "aws-credentials"),
        ("gke", "gcp-credentials"),
        ("aks", "azure-container-instance-credentials"),
    ],
)
def test_cloud_targets_take_a_credentials_block_whose_type_follows_from_the_kind(kind, block_type):
    spec = parse_spec(doc(kind, {"block": "prod-creds"}), source="test")
    assert spec.target.credentials.block == "prod-creds"
    assert spec.target.credentials_block_type() == creds.block_type(kind) == block_type
    assert spec.canonical_dict()["target"]["credentials"] == {"block": "prod-creds"}  # recorded, not secret


@pytest.mark.parametrize("kind", ["eks", "ecs", "gke", "aks"])
def test_no_block_means_the_default_chain_and_leaves_the_spec_dump_and_hash_as_before(kind):
    plain = parse_spec(doc(kind), source="test")
    assert plain.target.credentials is None
    assert (
        "credentials" not in plain.canonical_dict()["target"]
    )  # spec hashes of existing deployments stay put
    with_block = parse_spec(doc(kind, {"block": "prod-creds"}), source="test")
    # who deploys is not what is deployed: switching blocks makes no new revision
    assert naming.spec_hash(with_block) == naming.spec_hash(plain)
    assert naming.deployment_id(with_block) == naming.deployment_id(plain)


@pytest.mark.parametrize(
    ("value", "problem", "fix"),
    [
        (
            "prod-creds",
            "must be a block reference, not the string 'prod-creds'",
            "write target.credentials: {block: prod-creds}",
        ),
        (
            {"block": "aws-credentials/prod"},
            "names the block type too",
            "write only the block name: target.credentials: {block: prod}",
        ),
        (
            {"block": "Prod_Creds"},
            "is not a Prefect block name",
            "set target.credentials.block to the block's name, e.g. 'prod-creds'",
        ),
        ({"blok": "prod"}, "required field 'block' is missing", "add target.credentials.block: aws-prod"),
    ],
)
def test_a_bad_credentials_field_names_the_field_and_the_fix(value, problem, fix):
    issue = spec_error(doc("eks", value)).issues[0]
    assert issue.path.startswith("target.credentials"), issue
    assert problem in issue.problem and fix in issue.fix, issue


@pytest.mark.parametrize(
    "value",
    [
        {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET_KEY},
        {"block": "prod", "secret_access_key": SECRET_KEY},
        {"client_id": "app", "tenant_id": "t", "client_secret": SECRET_KEY},
        {"service_account_info": {"private_key": SECRET_KEY}},
    ],
)
def test_inline_credentials_are_refused_without_echoing_them(value):
    err = spec_error(doc("eks", value))
    text = f"{err} {err.details()}"
    assert SECRET_KEY not in text and KEY_ID not in text
    issue = err.issues[0]
    assert issue.path == "target.credentials" and "inline" in issue.problem
    assert "aws-credentials for eks and ecs" in issue.fix and "{block: <block-name>}" in issue.fix


@pytest.mark.parametrize("kind", ["local", "kube"])
def test_targets_outside_a_cloud_account_have_no_credentials_field(kind):
    issue = spec_error(doc(kind, {"block": "prod"})).issues[0]
    assert issue.path == "target.credentials" and "unknown field" in issue.problem


# --- block data -> typed credentials ------------------------------------------------------------------


def test_an_aws_block_maps_to_its_key_pair_session_token_and_profile():
    c = creds.from_block(
        "aws-credentials",
        "prod",
        {
            "aws_access_key_id": KEY_ID,
            "aws_secret_access_key": SECRET_KEY,
            "aws_session_token": "FwoGZ-session",
            "profile_name": None,
            "region_name": "eu-west-1",
            "aws_client_parameters": {"use_ssl": True},
        },
    )
    assert isinstance(c, creds.AwsCredentials) and not c.default_chain
    assert (c.block, c.access_key_id, c.secret_access_key.reveal(), c.session_token.reveal()) == (
        "prod",
        KEY_ID,
        SECRET_KEY,
        "FwoGZ-session",
    )
    assert SECRET_KEY not in repr(c) and "FwoGZ-session" not in repr(c) and KEY_ID in repr(c)
    profile = creds.from_block("aws-credentials", "p", {"profile_name": "deploy"})
    assert profile.profile_name == "deploy" and not profile.default_chain
    assert creds.from_block("aws-credentials", "empty", {"aws_client_parameters": {}}).default_chain


@pytest.mark.parametrize(
    ("data", "missing"),
    [
        ({"aws_access_key_id": KEY_ID}, "aws_secret_access_key"),
        ({"aws_secret_access_key": SECRET_KEY}, "aws_access_key_id"),
        ({"aws_session_token": SECRET_KEY}, "aws_access_key_id"),
    ],
)
def test_an_incomplete_aws_block_names_the_block_and_the_missing_field_never_a_value(data, missing):
    with pytest.raises(PermanentError) as caught:
        creds.from_block("aws-credentials", "prod", data)
    text = str(caught.value)
    assert "aws-credentials block 'prod'" in text and missing in text and SECRET_KEY not in text


def gcp_key(**changes) -> dict:
    return {
        "type": "service_account",
        "project_id": "p",
        "private_key": "-----BEGIN PRIVATE KEY-----\nx\n",
        "client_email": "deployer@p.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.example/token",
        **changes,
    }


def test_a_gcp_block_maps_its_key_as_data_or_as_a_file():
    c = creds.from_block("gcp-credentials", "g", {"service_account_info": gcp_key(), "project": "p"})
    assert c.service_account_info.reveal()["client_email"] == "deployer@p.iam.gserviceaccount.com"
    assert "PRIVATE KEY" not in repr(c) and not c.default_chain
    as_text = creds.from_block("gcp-credentials", "g", {"service_account_info": json.dumps(gcp_key())})
    assert as_text.service_account_info == c.service_account_info
    assert creds.from_block(
        "gcp-credentials", "f", {"service_account_file": "/keys/sa.json"}
    ).service_account_file
    assert creds.from_block("gcp-credentials", "adc", {"project": "p"}).default_chain


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"service_account_info": gcp_key(), "service_account_file": "/k.json"},
            "both service_account_info and",
        ),
        ({"service_account_info": gcp_key(type="authorized_user")}, "is not a service account key"),
        ({"service_account_info": gcp_key(private_key="")}, "lacks private_key"),
        ({"service_account_info": "{not json " + SECRET_KEY}, "is not JSON"),
    ],
)
def test_a_bad_gcp_block_says_what_is_wrong_without_the_key(data, problem):
    with pytest.raises(PermanentError) as caught:
        creds.from_block("gcp-credentials", "g", data)
    assert problem in str(caught.value) and "BEGIN PRIVATE" not in str(caught.value)
    assert SECRET_KEY not in str(caught.value)


def test_an_azure_block_maps_a_service_principal_or_the_default_chain():
    c = creds.from_block(
        "azure-container-instance-credentials",
        "az",
        {
            "client_id": "app-1",
            "tenant_id": "tenant-1",
            "client_secret": SECRET_KEY,
            "credential_kwargs": {"authority": "login.microsoftonline.us"},
        },
    )
    assert (c.client_id, c.tenant_id, c.client_secret.reveal(), c.kwargs) == (
        "app-1",
        "tenant-1",
        SECRET_KEY,
        {"authority": "login.microsoftonline.us"},
    )
    assert SECRET_KEY not in repr(c) and not c.default_chain
    assert creds.from_block(
        "azure-container-instance-credentials", "d", {"credential_kwargs": {}}
    ).default_chain
    with pytest.raises(PermanentError) as caught:
        creds.from_block(
            "azure-container-instance-credentials", "az", {"client_id": "a", "client_secret": SECRET_KEY}
        )
    assert "tenant_id is empty" in str(caught.value) and SECRET_KEY not in str(caught.value)


def test_an_unknown_block_type_is_refused():
    with pytest.raises(PermanentError, match="no credentials from secret blocks"):
        creds.from_block("secret", "x", {"value": SECRET_KEY})


def test_secrets_hide_in_repr_refuse_pickling_and_key_the_provider_cache():
    secret = creds.Secret(SECRET_KEY)
    assert SECRET_KEY not in repr(secret) and SECRET_KEY not in str(secret) and SECRET_KEY not in f"{secret}"
    c = creds.from_block(
        "aws-credentials", "prod", {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET_KEY}
    )
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(c)
    other = creds.from_block(
        "aws-credentials", "prod", {"aws_access_key_id": KEY_ID, "aws_secret_access_key": "x"}
    )
    assert c.fingerprint() != other.fingerprint() and SECRET_KEY not in c.fingerprint()
    assert (
        c.fingerprint()
        == creds.from_block(
            "aws-credentials", "prod", {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET_KEY}
        ).fingerprint()
    )


# --- typed credentials -> SDK credential objects (no network) -------------------------------------------


def aws_block(**data):
    return creds.from_block("aws-credentials", "prod", data)


def test_an_aws_block_becomes_the_boto3_session_of_every_aws_call(monkeypatch, tmp_path):
    from runtime.gateways.aws import session_for
    from runtime.providers import get_provider

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENV-KEY-ID")  # the block wins over the worker's environment
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    got = session_for(
        aws_block(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET_KEY, aws_session_token="tok")
    ).get_credentials()
    assert (got.access_key, got.secret_key, got.token) == (KEY_ID, SECRET_KEY, "tok")
    for kind in ("eks", "ecs"):
        provider = get_provider(
            kind, credentials=aws_block(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET_KEY)
        )
        session = provider.aws("us-west-2").session
        assert session.get_credentials().access_key == KEY_ID
    assert session_for(aws_block()).get_credentials().access_key == "ENV-KEY-ID"  # empty block: default chain
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(PermanentError, match="profile"):
        session_for(aws_block(profile_name="nope"))


def test_a_gcp_block_becomes_service_account_credentials_for_the_container_client(monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.oauth2 import service_account

    from runtime.gateways.gcp import ENDPOINT_ENV, SCOPES, Gke

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    block = creds.from_block("gcp-credentials", "g", {"service_account_info": gcp_key(private_key=pem)})
    monkeypatch.setenv(ENDPOINT_ENV, "http://127.0.0.1:9")  # a fake's endpoint: the block still decides auth
    gke = Gke(credentials=block)
    _ = gke.client  # builds the client; no request is made
    assert isinstance(gke._credentials, service_account.Credentials)
    assert gke._credentials.service_account_email == "deployer@p.iam.gserviceaccount.com"
    assert list(gke._credentials.scopes) == SCOPES
    bad = creds.from_block("gcp-credentials", "g", {"service_account_info": gcp_key(private_key=SECRET_KEY)})
    with pytest.raises(PermanentError) as caught:
        _ = Gke(credentials=bad).client
    assert "cannot be loaded" in str(caught.value) and SECRET_KEY not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_an_azure_block_becomes_a_client_secret_credential(monkeypatch):
    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    from runtime.gateways.azure import ENDPOINT_ENV, Azure, azure_credential

    block = creds.from_block(
        "azure-container-instance-credentials",
        "az",
        {"client_id": "app-1", "tenant_id": "tenant-1", "client_secret": SECRET_KEY},
    )
    credential = azure_credential(block)
    assert isinstance(credential, ClientSecretCredential)
    assert credential._client_id == "app-1" and credential._tenant_id == "tenant-1"
    assert isinstance(
        azure_credential(creds.from_block("azure-container-instance-credentials", "d", {})),
        DefaultAzureCredential,
    )
    monkeypatch.setenv(ENDPOINT_ENV, "http://127.0.0.1:9")
    az = Azure("00000000-0000-0000-0000-000000000000", credentials=block)
    _ = az.client
    assert isinstance(az.credential, ClientSecretCredential)  # not the fake's static credential
    bad = creds.from_block(
        "azure-container-instance-credentials",
        "az",
        {
            "client_id": "app-1",
            "tenant_id": "tenant-1",
            "client_secret": SECRET_KEY,
            "credential_kwargs": {"authority": "http://plain.example"},
        },
    )
    with pytest.raises(PermanentError) as caught:
        azure_credential(bad)
    assert "azure-container-instance-credentials block 'az'" in str(caught.value)
    assert SECRET_KEY not in str(caught.value)


# --- how backends get them -----------------------------------------------------------------------------


def test_backends_get_the_resolved_credentials_and_fail_closed_without_a_resolver(monkeypatch):
    from runtime.providers import access
    from runtime.targets import registry as backends
    from runtime.targets.cloud import backend as cloud_backend

    spec = parse_spec(doc("eks", {"block": "prod"}), source="test")
    block = aws_block(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET_KEY)
    made = []
    monkeypatch.setattr(
        access, "make_provider", lambda kind, credentials=None: made.append((kind, credentials)) or object()
    )
    with pytest.raises(PermanentError, match="nothing here can read Prefect blocks"):
        backends.backend_for(spec)  # the block named, no credentials passed: refused
    backends.backend_for(spec, credentials=block)  # as the tasks layer passes them (tasks/targets.py)
    assert made == [("eks", block)]
    with pytest.raises(PermanentError, match="were not resolved"):
        cloud_backend.CloudBackend(spec)  # built by hand without them: refused, never the default chain
    plain = parse_spec(doc("gke"), source="test")
    backends.backend_for(plain)  # no block: the resolver is not asked, the default chain is used
    assert made[-1] == ("gke", None)


def test_providers_are_cached_per_kind_and_credentials(monkeypatch):
    from runtime.providers import access

    built = []
    monkeypatch.setattr(access, "_PROVIDERS", {})
    monkeypatch.setattr(access, "get_provider", lambda kind, **kw: built.append((kind, kw)) or object())
    a = aws_block(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET_KEY)
    b = aws_block(aws_access_key_id=KEY_ID, aws_secret_access_key="rotated")
    first = access.make_provider("eks", a)
    assert access.make_provider("eks", a) is first
    assert access.make_provider("eks", b) is not first
    assert access.make_provider("eks") is not first
    assert [kw.get("credentials") for _, kw in built] == [a, b, None]
    assert all(SECRET_KEY not in key for key in access._PROVIDERS)


def test_secret_values_are_masked_in_every_log_record_even_an_sdks_debug_log(caplog):
    value = "dd-masked-in-logs-7f3a9c"
    creds.from_block("aws-credentials", "prod", {"aws_access_key_id": KEY_ID, "aws_secret_access_key": value})
    caplog.set_level(logging.DEBUG)
    logging.getLogger("botocore.endpoint").debug(
        "Sending http request: headers=%s", {"X-Amz-Security-Token": value}
    )
    logging.getLogger("dynadeploy.test").info(f"inline {value}")
    assert value not in caplog.text and caplog.text.count(creds.MASK) == 2
