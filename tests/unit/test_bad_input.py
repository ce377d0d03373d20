"""Bad input is refused cheaply, with the field and the fix, and never echoes a secret.

A corpus of what a person or a script can send instead of a spec: wrong types, unknown fields,
nulls, huge, deep and aliased YAML, binary, empty files, pipes, and secrets pasted into every field
that holds a reference or a name. Each goes through every entry point that reads a spec: the YAML
loader, ``parse_spec`` (what a flow parameter meets), the CLI, and what the flows hand to Prefect
(stored run parameters, parameter type errors). Every message, log record, CLI output and stored
parameter is searched for the marker values; every CLI call must start no process and create nothing
under DYNADEPLOY_HOME.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows import cli
from runtime.errors import SpecError
from runtime.spec import API_VERSION, load_spec, parse_spec

# Every marker holds "marker" (any case): a message may lower-case or re-dash a value it derives a
# suggestion from, so the check is on that word, not only on the exact value.
HF = "hf_MarkerHf0123456789abcdefGHIJ"
AWS_KEY_ID = "AKIAMARKER0000000001"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxMarkerCY0123456"
GITHUB = "ghp_Marker0123456789abcdefghijklmnopqrst"
AZURE = "Qx8Q~Marker.Secret_abcDEF123456789xyz"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvMarker\n-----END PRIVATE KEY-----\n"
SHA = "c1899de289a04d12100db370d81485cdf75e47ca"

BASE: dict[str, Any] = {"apiVersion": API_VERSION, "name": "demo"}
HUB = {"id": "Qwen/Qwen3-0.6B", "revision": SHA}
POOL = {"name": "gpu", "instance_type": "g6e.2xlarge", "gpu": {"type": "nvidia-l40s", "count": 1}}
EKS = {"kind": "eks", "region": "us-east-1", "cluster_name": "demo", "node_pools": [POOL]}
GKE = {
    "kind": "gke",
    "project": "my-project",
    "location": "us-central1-a",
    "cluster_name": "demo",
    "node_pools": [{**POOL, "instance_type": "g2-standard-24", "gpu": {"type": "nvidia-l4", "count": 1}}],
}
AKS = {
    "kind": "aks",
    "subscription_id": "00000000-0000-0000-0000-000000000000",
    "resource_group": "rg",
    "location": "eastus2",
    "cluster_name": "demo",
    "node_pools": [{**POOL, "name": "gpunp", "instance_type": "Standard_NC24ads_A100_v4"}],
}
ECS = {"kind": "ecs", "region": "us-east-1", "cluster_name": "dynamo-gpu"}


def with_(**sections: Any) -> dict[str, Any]:
    return {**copy.deepcopy(BASE), **copy.deepcopy(sections)}


# Secrets where a reference, a name or plain data belongs. Every one must be refused.
SECRET_CASES: dict[str, dict[str, Any]] = {
    "token-inline-string": with_(model={**HUB, "token": HF}),
    "token-as-secret_block": with_(model={**HUB, "token": {"secret_block": HF}}),
    "aws-secret-as-secret_block": with_(model={**HUB, "token": {"secret_block": AWS_SECRET}}),
    "token-as-env-name": with_(model={**HUB, "token": {"env": HF}}),
    "aws-secret-as-env-name": with_(model={**HUB, "token": {"env": AWS_SECRET}}),
    "github-token-as-env-name": with_(model={**HUB, "token": {"env": GITHUB}}),
    "token-as-value": with_(model={**HUB, "token": {"value": HF}}),
    "token-beside-block": with_(model={**HUB, "token": {"secret_block": "hf-token", "token": AWS_SECRET}}),
    "eks-credentials-secret-string": with_(model=HUB, target={**EKS, "credentials": AWS_SECRET}),
    "eks-credentials-key-id-string": with_(model=HUB, target={**EKS, "credentials": AWS_KEY_ID}),
    "eks-credentials-block-secret": with_(model=HUB, target={**EKS, "credentials": {"block": AWS_SECRET}}),
    "ecs-credentials-block-key-id": with_(model=HUB, target={**ECS, "credentials": {"block": AWS_KEY_ID}}),
    "ecs-credentials-typed-block-key": with_(
        model=HUB, target={**ECS, "credentials": {"block": f"aws-credentials/{AWS_KEY_ID}"}}
    ),
    "eks-credentials-inline": with_(
        model=HUB,
        target={**EKS, "credentials": {"aws_access_key_id": AWS_KEY_ID, "aws_secret_access_key": AWS_SECRET}},
    ),
    "eks-credentials-extra-field": with_(
        model=HUB, target={**EKS, "credentials": {"block": "aws-prod", "secret_key": AWS_SECRET}}
    ),
    "gke-credentials-inline-pem": with_(
        model=HUB, target={**GKE, "credentials": {"service_account_info": PEM}}
    ),
    "aks-credentials-secret-string": with_(model=HUB, target={**AKS, "credentials": AZURE}),
    "aks-credentials-block-secret": with_(model=HUB, target={**AKS, "credentials": {"block": AZURE}}),
    "env-hf-token-literal": with_(serving={"env": {"HF_TOKEN": HF}}),
    "env-aws-secret-literal": with_(serving={"env": {"AWS_SECRET_ACCESS_KEY": AWS_SECRET}}),
    "env-token-as-name": with_(serving={"env": {HF: "1"}}),
    "env-ref-secret-block-token": with_(serving={"env": {"HF": {"secret_block": HF}}}),
    "worker-env-api-key": with_(serving={"workers": {"env": {"API_KEY": GITHUB}}}),
    "worker-engine-arg-token": with_(serving={"workers": {"engine_args": [f"--api-key={HF}"]}}),
    "model-id-token": with_(model={"id": HF}),
    "model-id-aws-secret": with_(model={"id": AWS_SECRET}),
    "model-revision-aws-secret": with_(model={"id": "Qwen/Qwen3-0.6B", "revision": AWS_SECRET}),
    "model-revision-token": with_(model={"id": "Qwen/Qwen3-0.6B", "revision": HF}),
    "served-name-token": with_(model={**HUB, "served_name": f"x {HF}"}),
    "name-aws-secret": {**BASE, "name": AWS_SECRET},
    "name-azure-secret": {**BASE, "name": AZURE},
    "image-aws-secret": with_(serving={"image": AWS_SECRET}),
    "dynamo-version-token": with_(platform={"dynamo_version": HF}),
    "cache-size-token": with_(model={**HUB, "cache": {"size": HF}}),
    "topology-token": with_(serving={"topology": HF}),
    "kind-token": with_(target={"kind": HF}),
    "requests-token": with_(smoke={"requests": HF}),
    "region-aws-secret": with_(model=HUB, target={**EKS, "region": AWS_SECRET}),
    "instance-type-aws-secret": with_(model=HUB, target={**ECS, "instance_type": AWS_SECRET}),
    "label-value-aws-secret": with_(
        model=HUB, target={**EKS, "node_pools": [{**POOL, "labels": {"k": AWS_SECRET}}]}
    ),
    "label-key-aws-secret": with_(
        model=HUB, target={**EKS, "node_pools": [{**POOL, "labels": {AWS_SECRET: "v"}}]}
    ),
    "unknown-field-named-token": {**BASE, HF: 1},
    "unknown-field-named-aws-secret": {**BASE, AWS_SECRET: 1},
    "unknown-field-holding-token": {**BASE, "tokn": HF},
    "local-env-secret-ref-named-token": with_(serving={"env": {"X": {"env": HF}}}),
}

# Not secrets: wrong shapes a person or a script sends. Refused with the field and a fix.
SHAPE_CASES: dict[str, Any] = {
    "no-api-version": {"name": "demo"},
    "null-everywhere": {"apiVersion": None, "name": None, "target": None, "model": None, "serving": None},
    "numbers-for-strings": {**BASE, "name": 12, "model": {"id": 7}},
    "strings-for-numbers": with_(smoke={"requests": "40", "concurrency": "8"}),
    "bool-for-mapping": with_(serving=True),
    "list-for-mapping": with_(target=["local"]),
    "mapping-for-list": with_(serving={"workers": {"engine_args": {"a": 1}}}),
    "unknown-top-field": {**BASE, "servng": {}},
    "unknown-nested-field": with_(serving={"wrokers": {}}),
    "negative-replicas": with_(serving={"workers": {"replicas": -1}}),
    "huge-replicas": with_(serving={"workers": {"replicas": 10**12}}),
    "nan-rate": with_(smoke={"sla": {"max_error_rate": float("nan")}}),
    "empty-name": {**BASE, "name": ""},
    "non-string-key": {**BASE, 1: "x"},
    "top-level-list": [BASE],
    "top-level-string": "apiVersion: dynadeploy.io/v1",
    "top-level-none": None,
    "branch-as-revision-local": with_(model={"id": "Qwen/Qwen3-0.6B", "revision": "main"}),
    "tag-as-revision-local": with_(model={"id": "Qwen/Qwen3-0.6B", "revision": "v1.0"}),
    "ten-mb-prompt": with_(smoke={"prompt": "x" * (10 * 1024 * 1024)}),
    "long-prompt": with_(smoke={"prompt": "x" * 100_000}),
    "nonexistent-region": with_(model=HUB, target={**EKS, "region": "us-east-7"}),
    "nonexistent-ecs-region": with_(model=HUB, target={**ECS, "region": "eu-west-9"}),
    "nonexistent-gke-zone": with_(model=HUB, target={**GKE, "location": "us-central9-a"}),
    "nonexistent-aks-location": with_(model=HUB, target={**AKS, "location": "eastus9"}),
    "nonexistent-instance-type": with_(
        model=HUB, target={**EKS, "node_pools": [{**POOL, "instance_type": "g6e.2xlargee"}]}
    ),
    "nonexistent-ecs-instance-type": with_(model=HUB, target={**ECS, "instance_type": "g9z.2xlarge"}),
    "nonexistent-gke-machine": with_(
        model=HUB, target={**GKE, "node_pools": [{**GKE["node_pools"][0], "instance_type": "g2-standerd-24"}]}
    ),
    "nonexistent-aks-size": with_(
        model=HUB, target={**AKS, "node_pools": [{**AKS["node_pools"][0], "instance_type": "Standard_QQ24"}]}
    ),
    "local-env-secret-block-ref": with_(serving={"env": {"API_TOKEN": {"secret_block": "api-token"}}}),
    "local-worker-env-env-ref": with_(serving={"workers": {"env": {"API_TOKEN": {"env": "API_TOKEN"}}}}),
}
# Deep, built outside the literal (a dict 200 levels deep).
_deep: dict[str, Any] = {}
_node = _deep
for _ in range(200):
    _node["a"] = {}
    _node = _node["a"]
SHAPE_CASES["deep-dict"] = {**BASE, "serving": _deep}
SHAPE_CASES["wide-dict"] = {**BASE, "labels": {f"k{i}": i for i in range(100_000)}}
_cyclic: dict[str, Any] = {**BASE}
_cyclic["serving"] = _cyclic
SHAPE_CASES["self-referencing-dict"] = _cyclic

# YAML text no parser-level check may let through (file contents; bytes where not text).
YAML_CASES: dict[str, str | bytes] = {
    "empty": "",
    "only-comments": "# nothing here\n",
    "only-document-start": "---\n",
    "binary": b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)),
    "latin-1": "name: caf\xe9\n".encode("latin-1"),
    "nul-in-text": b"apiVersion: dynadeploy.io/v1\x00\nname: demo\n",
    "two-documents": f"apiVersion: {API_VERSION}\nname: a\n---\napiVersion: {API_VERSION}\nname: b\n",
    "tab-indent": f"apiVersion: {API_VERSION}\nserving:\n\ttopology: agg\n",
    "unclosed-quote-with-token": f'apiVersion: {API_VERSION}\nname: "{HF}\nserving: {{}}\n',
    "duplicate-key-with-token": f"apiVersion: {API_VERSION}\nname: demo\nmodel:\n  token: {HF}\n  token: {HF}\n",
    "python-tag": f"apiVersion: {API_VERSION}\nname: !!python/object/apply:os.system ['true']\n",
    "unknown-tag": f"apiVersion: {API_VERSION}\nname: !vault {HF}\n",
    "merge-key-bad": f"apiVersion: {API_VERSION}\nname: demo\nserving:\n  <<: 5\n",
    "anchor-to-nothing": f"apiVersion: {API_VERSION}\nname: *nothing\n",
    "recursive-alias": f"apiVersion: {API_VERSION}\nname: demo\nserving: &s\n  env: *s\n",
    "deep-flow": f"apiVersion: {API_VERSION}\nname: demo\nserving: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep-block": f"apiVersion: {API_VERSION}\nname: demo\n"
    + "".join(" " * i + f"k{i}:\n" for i in range(100)),
    "alias-bomb": f"apiVersion: {API_VERSION}\nname: demo\n"
    + 'a0: &a0 ["x","x","x","x","x","x","x","x","x"]\n'
    + "".join(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)),
    "huge": f"apiVersion: {API_VERSION}\nname: demo\n" + "# padding\n" * 200_000,
}


def _texts(exc: SpecError) -> str:
    return "\n".join(
        [str(exc), exc.details(), repr(exc), *(f"{i.path}|{i.problem}|{i.fix}" for i in exc.issues)]
    )


def _no_marker(text: str) -> None:
    assert "marker" not in text.lower(), f"a secret marker was echoed: {text}"


def _well_formed(exc: SpecError) -> None:
    assert exc.issues, "a SpecError without issues"
    for issue in exc.issues:
        assert issue.path and issue.problem and issue.fix, issue


@pytest.fixture
def no_side_effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A DYNADEPLOY_HOME that must stay absent, no Prefect API, and no process may start."""
    home = tmp_path / "home"
    monkeypatch.setenv("DYNADEPLOY_HOME", str(home))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("DYNADEPLOY_PREFECT", raising=False)
    started: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        started.append(args)
        raise AssertionError(f"bad input started a process: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(os, "fork", refuse)
    monkeypatch.setattr(os, "posix_spawn", refuse)
    monkeypatch.setattr(os, "posix_spawnp", refuse)
    yield home
    assert not started
    assert not home.exists(), f"bad input created {sorted(p.name for p in home.rglob('*'))}"


def _write(tmp_path: Path, name: str, content: Any) -> Path:
    path = tmp_path / f"{name}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(yaml.safe_dump(content, sort_keys=False, width=10**6))
    return path


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


# --- secrets ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(SECRET_CASES), ids=list(SECRET_CASES))
def test_secret_in_a_wrong_place_is_refused_and_never_echoed(
    case: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    no_side_effects: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    data = SECRET_CASES[case]
    with pytest.raises(SpecError) as as_dict:
        parse_spec(copy.deepcopy(data))
    _well_formed(as_dict.value)
    _no_marker(_texts(as_dict.value))

    path = _write(tmp_path, case, data)
    with pytest.raises(SpecError) as as_file:
        load_spec(path)
    _well_formed(as_file.value)
    _no_marker(_texts(as_file.value))

    for command in (["deploy", str(path)], ["teardown", str(path)], ["status", str(path)]):
        code, output = _cli(command, capsys)
        assert code == 2, (command, output)
        _no_marker(output)
    _no_marker(caplog.text)


@pytest.mark.parametrize("case", ["secret-block", "env-name", "credentials-string", "model-id"])
def test_a_refused_secret_is_named_by_its_field_with_the_fix(case: str) -> None:
    data, path, fix = {
        "secret-block": (SECRET_CASES["token-as-secret_block"], "model.token.secret_block", "block name"),
        "env-name": (SECRET_CASES["token-as-env-name"], "model.token.env", "HF_TOKEN"),
        "credentials-string": (SECRET_CASES["eks-credentials-secret-string"], "target.credentials", "block"),
        "model-id": (SECRET_CASES["model-id-aws-secret"], "model.id", "Qwen/Qwen3-0.6B"),
    }[case]
    with pytest.raises(SpecError) as caught:
        parse_spec(copy.deepcopy(data))
    assert caught.value.issues[0].path == path
    assert fix in caught.value.issues[0].fix


# --- shapes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(SHAPE_CASES), ids=list(SHAPE_CASES))
def test_wrong_shapes_are_refused_cheaply_with_a_field_and_a_fix(case: str) -> None:
    started = time.monotonic()
    with pytest.raises(SpecError) as caught:
        parse_spec(SHAPE_CASES[case])
    assert time.monotonic() - started < 5  # generous for a loaded 2-core machine; main takes far longer
    _well_formed(caught.value)


@pytest.mark.parametrize(
    ("case", "path", "words"),
    [
        ("branch-as-revision-local", "model.revision", ["'main'", "40-hex"]),
        ("ten-mb-prompt", "smoke.prompt", ["longer than", "shorten smoke.prompt"]),
        ("long-prompt", "smoke.prompt", ["too long", "16384"]),
        ("nonexistent-region", "target.region", ["'us-east-7'", "infra/clouds.yaml", "us-east-1"]),
        ("nonexistent-ecs-region", "target.region", ["'eu-west-9'", "eu-west-"]),
        ("nonexistent-gke-zone", "target.location", ["'us-central9-a'", "infra/clouds.yaml"]),
        ("nonexistent-aks-location", "target.location", ["'eastus9'", "eastus"]),
        (
            "nonexistent-instance-type",
            "target.node_pools[0].instance_type",
            ["'g6e.2xlargee'", "g6e.2xlarge"],
        ),
        ("nonexistent-ecs-instance-type", "target.instance_type", ["'g9z.2xlarge'", "families"]),
        ("nonexistent-gke-machine", "target.node_pools[0].instance_type", ["'g2-standerd-24'"]),
        ("nonexistent-aks-size", "target.node_pools[0].instance_type", ["'Standard_QQ24'"]),
        ("local-env-secret-block-ref", "serving.env.API_TOKEN", ["supervisord", "model.token"]),
        ("local-worker-env-env-ref", "serving.workers.env.API_TOKEN", ["secret reference"]),
        ("deep-dict", "serving", ["deeper than"]),
        ("wide-dict", "spec", ["more than"]),
    ],
)
def test_the_new_rules_name_the_field_and_the_fix(case: str, path: str, words: list[str]) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(SHAPE_CASES[case])
    issue = next((i for i in caught.value.issues if i.path.startswith(path)), None)
    assert issue is not None, caught.value.details()
    text = f"{issue.problem} -> {issue.fix}"
    for word in words:
        assert word in text, text


def test_builtin_model_and_pinned_hub_models_still_load() -> None:
    assert parse_spec(BASE).model.is_builtin()
    assert parse_spec(with_(model=HUB)).model.revision == SHA
    for target in (EKS, GKE, AKS, ECS):
        assert parse_spec(with_(model=HUB, target=target)).target.kind == target["kind"]
    kube = with_(model=HUB, target={"kind": "kube"}, serving={"env": {"T": {"secret_block": "tok"}}})
    assert parse_spec(kube).serving.env["T"].secret_block == "tok"  # references stay fine off local


@pytest.mark.parametrize("case", list(YAML_CASES), ids=list(YAML_CASES))
def test_bad_yaml_is_refused_by_the_cli_with_no_side_effects(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_side_effects: Path
) -> None:
    path = _write(tmp_path, case, YAML_CASES[case])
    started = time.monotonic()
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert time.monotonic() - started < 5
    _well_formed(caught.value)
    _no_marker(_texts(caught.value))
    code, output = _cli(["deploy", str(path)], capsys)
    assert code == 2 and "error: invalid spec" in output and "->" in output, output
    _no_marker(output)


def test_a_spec_from_a_pipe_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dynadeploy deploy <(cat spec.yaml)`: the CLI validates what it read and hands the flow that,
    not the path (a second read of a pipe finds it empty)."""
    fifo = tmp_path / "spec.fifo"
    os.mkfifo(fifo)
    text = (Path(__file__).resolve().parents[2] / "infra" / "targets" / "local.yaml").read_text()
    writer = subprocess.Popen([sys.executable, "-c", f"open({str(fifo)!r}, 'w').write({text!r})"])
    got: dict[str, Any] = {}

    def fake_deploy(**kwargs: Any) -> dict:
        got.update(kwargs)
        raise SpecError([], source="stop here")  # the test needs only what the flow was given

    import flows.deploy

    try:
        monkeypatch.setattr(cli, "_prepare_prefect", lambda **_: None)
        monkeypatch.setattr(flows.deploy, "deploy", fake_deploy)
        cli.main(["deploy", str(fifo), "--output", "json"])
        writer.wait(timeout=30)
    finally:  # if the CLI failed before opening the FIFO, the writer would block in open() for ever
        writer.kill()
        writer.wait(timeout=30)
    capsys.readouterr()
    assert isinstance(got["spec"], dict), "the flow would read the pipe a second time"
    assert parse_spec(got["spec"]) == load_spec(
        Path(__file__).resolve().parents[2] / "infra/targets/local.yaml"
    )


# --- hostile YAML, in a child with a memory limit (main exhausts memory or the stack) -----------------

_HOSTILE = textwrap.dedent("""
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
    sys.setrecursionlimit(5000)
    from runtime.errors import SpecError
    from runtime.spec import load_spec
    out = {}
    for name, path in json.loads(sys.argv[1]).items():
        started = time.monotonic()
        try:
            load_spec(path)
            out[name] = ["loaded", 0.0, ""]
        except SpecError as exc:
            out[name] = ["SpecError", time.monotonic() - started, exc.details()]
        except BaseException as exc:
            out[name] = [type(exc).__name__, time.monotonic() - started, ""]
    print(json.dumps(out))
""")


def test_hostile_yaml_is_refused_cheaply_within_bounded_memory(tmp_path: Path) -> None:
    cases = {
        "dev-zero": "/dev/zero",
        "alias-bomb-1kb": str(_write(tmp_path, "bomb", YAML_CASES["alias-bomb"])),
        "deep-100k": str(
            _write(
                tmp_path, "deep", f"apiVersion: {API_VERSION}\nname: " + "[" * 100_000 + "]" * 100_000 + "\n"
            )
        ),
        "deep-map": str(_write(tmp_path, "deepmap", "".join(" " * i + f"k{i}:\n" for i in range(300)))),
        "twenty-mb": str(_write(tmp_path, "big", "a: b\n" * (5 * 2**20))),
        "recursive-alias": str(_write(tmp_path, "rec", YAML_CASES["recursive-alias"])),
    }
    assert len(YAML_CASES["alias-bomb"]) < 1024
    run = subprocess.run(
        [sys.executable, "-c", _HOSTILE, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(run.stdout)
    for name, (outcome, seconds, details) in results.items():
        assert outcome == "SpecError", (name, outcome)
        assert seconds < 5, (name, seconds)
        assert "->" in details, details
    assert "larger than" in results["dev-zero"][2] and "larger than" in results["twenty-mb"][2]
    assert "aliases" in results["alias-bomb-1kb"][2] and "at line" in results["alias-bomb-1kb"][2]
    assert "deeper than" in results["deep-100k"][2] and "deeper than" in results["deep-map"][2]


# --- what the flows hand to Prefect -------------------------------------------------------------------


def _flows():
    from flows.canary import canary
    from flows.deploy import deploy
    from flows.rollback import rollback
    from flows.teardown import teardown

    return {"deploy": deploy, "canary": canary, "rollback": rollback, "teardown": teardown}


@pytest.mark.parametrize("case", list(SECRET_CASES), ids=list(SECRET_CASES))
def test_flow_parameters_stored_by_prefect_hold_no_secret(case: str) -> None:
    """Prefect stores a run's parameters when it creates the run, before the flow validates them."""
    data = SECRET_CASES[case]
    for name, flow_obj in _flows().items():
        params = {"spec": copy.deepcopy(data)}
        if name == "deploy":
            params["overrides"] = {"model": {"token": HF}}
        if name == "canary":
            params["candidate"] = copy.deepcopy(data)
        stored = flow_obj.serialize_parameters(params)
        _no_marker(json.dumps(stored, default=str))


def test_flow_parameters_of_valid_specs_are_stored_unchanged() -> None:
    deploy = _flows()["deploy"]
    for data in (
        BASE,
        with_(model={**HUB, "token": {"secret_block": "hf-token"}}),
        with_(
            model={**HUB, "token": {"env": "HF_TOKEN"}},
            target={**EKS, "credentials": {"block": "aws-prod"}},
            serving={"env": {"TOKENIZERS_PARALLELISM": "false"}},
        ),
        with_(
            model=HUB,
            target={
                **EKS,
                "node_pools": [{**POOL, "taints": [{"key": "nvidia.com/gpu", "value": "present"}]}],
            },
        ),
    ):
        stored = deploy.serialize_parameters({"spec": data, "overrides": None})
        assert stored["spec"] == json.loads(json.dumps(data))
        parse_spec(stored["spec"])
    assert deploy.serialize_parameters({"spec": "/x/spec.yaml"})["spec"] == "/x/spec.yaml"


def test_flow_parameter_type_errors_do_not_quote_a_secret() -> None:
    deploy = _flows()["deploy"]
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the raised message is checked below / any ValueError is the contract
        deploy.validate_parameters({"spec": with_(), "overrides": AWS_SECRET})
    _no_marker(str(caught.value))
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the raised message is checked below / any ValueError is the contract
        deploy.validate_parameters({"spec": [HF]})
    _no_marker(str(caught.value))


# --- the Prefect server the CLI starts ----------------------------------------------------------------


def test_the_cli_prefect_server_inherits_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.gateways import prefect_server

    monkeypatch.setenv("DYNADEPLOY_HOME", str(tmp_path / "home"))
    for name, value in {
        "HF_TOKEN": HF,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "GITHUB_TOKEN": GITHUB,
        "AZURE_CLIENT_SECRET": AZURE,
        "MY_APP_PASSWORD": AZURE,
        "HTTPS_PROXY": f"http://user:{AZURE}@proxy:3128",
        "PREFECT_API_KEY": HF,
    }.items():
        monkeypatch.setenv(name, value)
    seen: dict[str, Any] = {}

    class FakeServer:
        pid = 0
        returncode = 3

        def __init__(self, args: list[str], env: dict[str, str], **_: Any) -> None:
            seen["env"] = env

        def poll(self) -> int:
            return 3

    monkeypatch.setattr(prefect_server.subprocess, "Popen", FakeServer)
    monkeypatch.setattr(prefect_server, "healthy", lambda url: False)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the fake server "exits" at once
        prefect_server.ensure_server(timeout_s=5)
    env = seen["env"]
    _no_marker(json.dumps(env))
    assert env["PATH"] == os.environ["PATH"] and env["PREFECT_HOME"].startswith(str(tmp_path))
