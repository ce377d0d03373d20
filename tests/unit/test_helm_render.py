"""runtime.gateways.helm offline: real helm (4 and 3) rendering a small chart, reads through helm's memory
storage driver, the pyhelm3 argv workaround, and error translation.

No API server is involved. Reads (status/history/list/get values) run the real binary with
``HELM_DRIVER=memory`` and ``HELM_MEMORY_DRIVER_DATA`` (helm's own test hook that preloads release
records). Writes (upgrade/rollback/uninstall) cannot run without a cluster, so those tests capture
the argv pyhelm3 would run and answer with canned output; the live contract tests run against the
Kubernetes API simulator under tests/harness/kubeapi.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from runtime.errors import ToolError, TransientError
from runtime.gateways import helm as rh
from runtime.gateways.toolchain import binary

CHART = Path(__file__).resolve().parents[1] / "harness" / "charts" / "rendertest"


@pytest.fixture(params=[4, 3], ids=["helm4", "helm3"])
def helm(request, monkeypatch, tmp_path) -> rh.Helm:
    try:
        binary("helm", major=request.param)
    except ToolError:
        pytest.skip(
            f"helm {request.param} not installed (uv run python -m runtime.gateways.toolchain install)"
        )
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))  # never a real cluster
    monkeypatch.setenv("HELM_CACHE_HOME", str(tmp_path / "helm-cache"))
    monkeypatch.setenv("HELM_CONFIG_HOME", str(tmp_path / "helm-config"))
    return rh.Helm(None, major=request.param)


def by_kind(docs: list[dict]) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in docs}


# --------------------------------------------------------------------------------------- rendering


def test_template_merges_values_over_chart_defaults(helm):
    values = {"replicas": 3, "config": {"extra": {"mode": "fast"}}}
    docs = helm.template(CHART, "demo", values, "serving")
    assert helm.major == (4 if "/helm3/" not in helm.executable else 3)
    kinds = by_kind(docs)
    assert sorted(kinds) == ["ConfigMap", "CustomResourceDefinition", "Deployment"]
    deploy, cm = kinds["Deployment"], kinds["ConfigMap"]
    assert deploy["spec"]["replicas"] == 3  # override
    assert (
        deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "example.invalid/rendertest:1.2.3"
    )  # default
    assert deploy["metadata"]["namespace"] == "serving" and cm["metadata"]["name"] == "demo-config"
    assert cm["data"] == {"greeting": "hello", "mode": "fast"}  # nested default kept, extra merged in
    assert values == {"replicas": 3, "config": {"extra": {"mode": "fast"}}}  # caller's dict untouched


def test_template_without_crds_and_with_string_path(helm):
    docs = helm.template(str(CHART), "demo", None, "default", include_crds=False)
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment"]


def test_chart_crds_from_directory_and_packaged_archive(helm, tmp_path):
    crds = helm.chart_crds(CHART)
    assert [c["metadata"]["name"] for c in crds] == ["widgets.rendertest.example.com"]
    assert crds[0]["spec"]["versions"][0]["subresources"] == {"status": {}}
    subprocess.run(
        [helm.executable, "package", str(CHART), "-d", str(tmp_path)], check=True, capture_output=True
    )
    packaged = tmp_path / "rendertest-0.1.0.tgz"
    assert helm.chart_crds(packaged) == crds


def test_schema_violation_is_permanent_with_helms_reason(helm):
    with pytest.raises(ToolError) as err:
        helm.template(CHART, "demo", {"replicas": "three", "hfToken": "hf_abcdefghijklmnopqrstuvwx"}, "ns")
    text = str(err.value)
    assert text.startswith("helm template demo -n ns failed: values don't meet the specifications")
    assert "replicas" in text and "fix the values" in text
    assert "hf_abc" not in text


def test_template_execution_error_is_permanent(helm):
    with pytest.raises(ToolError, match="failRender is set: refusing to render"):
        helm.template(CHART, "demo", {"failRender": True}, "ns")


def test_missing_chart_is_permanent(helm, tmp_path):
    with pytest.raises(ToolError, match="check the chart reference"):
        helm.template(tmp_path / "nope" / "chart", "demo", {}, "ns")


def test_sync_facade_works_inside_a_running_event_loop(helm):
    async def prefect_like_async_task() -> int:
        return len(helm.template(CHART, "demo", {}, "ns"))  # sync call from inside a loop

    assert asyncio.run(prefect_like_async_task()) == 3


def test_missing_binary_raises_with_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNADEPLOY_TOOLS_DIR", str(tmp_path))
    with pytest.raises(ToolError, match=r"runtime.gateways.toolchain install"):
        rh.Helm(None)


# ------------------------------------------------------------------- reads via helm's memory driver


def release(rev: int, status: str, version: str, values: dict, *, name: str = "demo") -> dict:
    return {
        "name": name,
        "namespace": "apps",
        "version": rev,
        "info": {
            "status": status,
            "first_deployed": "2025-01-01T10:00:00Z",
            "last_deployed": f"2025-01-0{rev}T10:00:00.123456789Z",
            "description": f"rev {rev}",
        },
        "chart": {
            "metadata": {"apiVersion": "v2", "name": "rendertest", "version": version, "appVersion": "1.2.3"}
        },
        "config": values,
        "manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    }


@pytest.fixture
def stored(monkeypatch, tmp_path):
    """Preload release records into helm's memory driver; returns a setter."""

    def load(*records: dict) -> None:
        data = tmp_path / "releases.yaml"
        data.write_text(yaml.safe_dump(list(records)))
        monkeypatch.setenv("HELM_DRIVER", "memory")
        monkeypatch.setenv("HELM_MEMORY_DRIVER_DATA", str(data))

    return load


@pytest.fixture
def writes(monkeypatch):
    """Capture upgrade/rollback/uninstall argv (no cluster here); everything else runs for real."""
    from pyhelm3.command import Command

    seen: list[list[str]] = []
    real_run = Command.run

    async def run(self, command, input=None):
        argv = [str(part) for part in command]
        if argv[0] in {"upgrade", "rollback", "uninstall"}:
            seen.append(argv)
            if argv[0] == "upgrade":
                values = json.loads(input)
                return json.dumps(
                    {
                        "name": argv[1],
                        "namespace": argv[argv.index("--namespace") + 1],
                        "version": 9,
                        "info": {"status": "deployed", "last_deployed": "2025-02-01T00:00:00Z"},
                        "config": values,
                    }
                ).encode()
            return b""
        return await real_run(self, command, input)

    monkeypatch.setattr(Command, "run", run)
    return seen


def test_current_history_list_from_stored_releases(helm, stored):
    stored(
        release(1, "superseded", "0.1.0", {"replicas": 1}),
        release(2, "deployed", "0.1.0", {"replicas": 2, "apiToken": "s3cr3t-value"}),
    )
    cur = helm.current("demo", "apps")
    assert (cur.revision, cur.status, cur.chart, cur.chart_version, cur.app_version) == (
        2,
        "deployed",
        "rendertest",
        "0.1.0",
        "1.2.3",
    )
    assert cur.values == {"replicas": 2, "apiToken": "s3cr3t-value"}
    assert cur.updated.isoformat() == "2025-01-02T10:00:00.123456+00:00"
    assert "s3cr3t" not in repr(cur)
    assert helm.current("other", "apps") is None
    hist = helm.history("demo", "apps")
    assert [(h.revision, h.status, h.chart_version, h.values["replicas"]) for h in hist] == [
        (1, "superseded", "0.1.0", 1),
        (2, "deployed", "0.1.0", 2),
    ]
    assert helm.history("other", "apps") == []
    [listed] = helm.list_releases("apps")
    assert (listed.name, listed.revision, listed.chart, listed.values["replicas"]) == (
        "demo",
        2,
        "rendertest",
        2,
    )
    assert listed.updated is not None


def test_uninstall_of_missing_release_is_false(helm, stored):
    stored(release(1, "deployed", "0.1.0", {}))
    assert helm.uninstall("ghost", "apps") is False


def test_ensure_is_a_noop_when_chart_and_values_match(helm, stored, writes):
    stored(release(1, "deployed", "0.1.0", {"replicas": 2}))
    same = helm.ensure("demo", CHART, {"replicas": 2}, "apps")
    assert (same.revision, writes) == (1, [])
    changed = helm.ensure("demo", CHART, {"replicas": 4}, "apps", wait=True)
    assert changed.revision == 9 and changed.values == {"replicas": 4}
    [argv] = writes
    assert argv[:3] == ["upgrade", "demo", str(CHART)] and "--install" in argv and "--wait" in argv


def test_ensure_upgrades_when_chart_version_differs_or_release_failed(helm, stored, writes):
    stored(release(1, "deployed", "0.0.9", {}))
    helm.ensure("demo", CHART, {}, "apps")
    stored(release(1, "failed", "0.1.0", {}))
    helm.ensure("demo", CHART, {}, "apps")
    assert [argv[0] for argv in writes] == ["upgrade", "upgrade"]


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (
            [
                release(1, "superseded", "0.1.0", {}),
                release(2, "failed", "0.1.0", {}),
                release(3, "pending-upgrade", "0.1.0", {}),
            ],
            ["rollback", "demo", "1"],
        ),
        (
            [release(1, "deployed", "0.1.0", {}), release(2, "pending-rollback", "0.1.0", {})],
            ["rollback", "demo", "1"],
        ),
        ([release(1, "pending-install", "0.1.0", {})], ["uninstall", "demo"]),
        (
            [release(1, "failed", "0.1.0", {}), release(2, "pending-upgrade", "0.1.0", {})],
            ["uninstall", "demo"],
        ),
        ([release(1, "deployed", "0.1.0", {})], None),
    ],
)
def test_recover_pending_rolls_back_or_uninstalls(helm, stored, writes, records, expected):
    stored(*records)
    helm.recover_pending("demo", "apps")
    if expected is None:
        assert writes == []
    else:
        assert writes[0][: len(expected)] == expected
        assert "--wait" in writes[0] and writes[0][writes[0].index("--namespace") + 1] == "apps"


def test_install_argv_maps_flags_per_major(helm, writes):
    h = rh.Helm("kube/config", "ctx-a", major=helm.major, disable_validation=True, timeout_s=42)
    info = h.install_or_upgrade("demo", CHART, {"replicas": 1}, "apps", atomic=True, skip_crds=True)
    assert (info.revision, info.chart, info.chart_version, info.app_version) == (
        9,
        "rendertest",
        "0.1.0",
        "1.2.3",
    )
    [argv] = writes
    assert ("--rollback-on-failure" if helm.major == 4 else "--atomic") in argv
    assert argv.count("--disable-openapi-validation") == 1 and "--skip-crds" in argv
    assert "--create-namespace" not in argv  # namespaces are ours
    assert argv[argv.index("--timeout") + 1] == "42s"
    cmd = h.client._command  # pyhelm3 appends these in Command.run, after our capture
    assert (str(cmd._kubeconfig), cmd._kubecontext) == ("kube/config", "ctx-a")


def test_real_binary_accepts_our_argv_and_unreachable_api_is_transient(helm, tmp_path):
    """Flags are parsed before helm dials the API: reaching 'connection refused' proves the argv is valid."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    h = rh.Helm(str(kubeconfig), "c", major=helm.major, disable_validation=True, timeout_s=30)
    calls = {
        "upgrade --install": lambda: h.install_or_upgrade(
            "demo", CHART, {"replicas": 1}, "apps", wait=True, atomic=True, skip_crds=True, description="why"
        ),
        "ensure": lambda: h.ensure("demo", CHART, {}, "apps", recover=True),
        "rollback": lambda: h.rollback("demo", "apps", 1, wait=True),
        "uninstall": lambda: h.uninstall("demo", "apps", wait=True),
        "list": lambda: h.list_releases(),
        "history": lambda: h.history("demo", "apps"),
        "recover": lambda: h.recover_pending("demo", "apps"),
    }
    for op, call in calls.items():
        with pytest.raises(TransientError) as err:
            call()
        assert str(err.value).startswith(f"helm {op}") and "connection refused" in str(err.value), err.value


# ------------------------------------------------------------------------------ pyhelm3 workaround


def test_rejoin_flags():
    flag = "--disable-openapi-validation"
    exploded = ["upgrade", "r", "c", "--values", "-", *flag, "--kubeconfig", "k"]
    assert rh.rejoin_flags(exploded) == ["upgrade", "r", "c", "--values", "-", flag, "--kubeconfig", "k"]
    assert rh.rejoin_flags(["--history-max", 10, flag]) == ["--history-max", 10, flag]
    assert rh.rejoin_flags(["-", "-", "d"]) == ["-", "-", "d"]


def test_fixed_command_passes_the_flag_as_one_argument(monkeypatch):
    from pyhelm3.command import Command

    seen: list[list] = []

    async def capture(self, command, input=None):
        seen.append(list(command))
        return b'{"name": "r"}'

    monkeypatch.setattr(Command, "run", capture)
    kwargs = {"disable_validation": True, "create_namespace": False, "namespace": "ns"}
    asyncio.run(Command(executable="helm").install_or_upgrade("rel", "chart", {}, **kwargs))
    asyncio.run(rh.fixed_command_class()(executable="helm").install_or_upgrade("rel", "chart", {}, **kwargs))
    broken, fixed = seen
    assert "--disable-openapi-validation" not in broken, "pyhelm3 fixed the bug; FixedCommand can go"
    assert fixed.count("--disable-openapi-validation") == 1
    assert [a for a in fixed if isinstance(a, str) and len(a) == 1] == ["-"]  # only `--values -` remains


# ------------------------------------------------------------------------------- error translation


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        (
            "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress",
            TransientError,
        ),
        (
            (
                'Error: Kubernetes cluster unreachable: Get "https://10.0.0.1:6443/version": dial tcp 10.0.0.1:6443: '
                "connect: connection refused"
            ),
            TransientError,
        ),
        ("Error: INSTALLATION FAILED: context deadline exceeded", TransientError),
        ("Error: UPGRADE FAILED: timed out waiting for the condition", TransientError),
        (
            "Error: the server has received too many requests and has asked us to try again later (get secrets)",
            TransientError,
        ),
        (
            'Error: an error on the server ("Internal Server Error") has prevented the request from succeeding',
            TransientError,
        ),
        (
            "Error: the server is currently unable to handle the request (get deployments.apps x)",
            TransientError,
        ),
        (
            'Error: Operation cannot be fulfilled on deployments.apps "x": the object has been modified',
            TransientError,
        ),
        (
            (
                'Error: create: failed to create: namespaces "ns" is forbidden: unable to create new content in namespace ns '
                "because it is being terminated"
            ),
            TransientError,
        ),
        (
            "Error: Kubernetes cluster unreachable: invalid configuration: no configuration has been provided",
            ToolError,
        ),
        (
            'Error: INSTALLATION FAILED: secrets is forbidden: User "dev" cannot create resource "secrets"',
            ToolError,
        ),
        (
            'Error: chart "gpu-operator" version "v99.0.0" not found in https://helm.ngc.nvidia.com/nvidia repository',
            ToolError,
        ),
        (
            "Error: INSTALLATION FAILED: execution error at (c/templates/x.yaml:3:4): image.tag is required",
            ToolError,
        ),
        (
            "Error: YAML parse error on c/templates/x.yaml: error converting YAML to JSON: yaml: line 4",
            ToolError,
        ),
        ('Error: INSTALLATION FAILED: create: failed to create: namespaces "apps" not found', ToolError),
        (
            'Error: UPGRADE FAILED: Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas',
            ToolError,
        ),
        (
            "Error: YAML parse error on c/templates/x.yaml: yaml: line 500: did not find expected key",
            ToolError,
        ),
        ("Error: uninstall: Release not loaded: demo: release: not found", ToolError),
        ("Error: something nobody anticipated", ToolError),
    ],
)
def test_translate_error_classes(stderr, kind):
    err = rh.translate_error(stderr, op="upgrade --install", release="demo", namespace="apps")
    assert type(err) is kind
    assert str(err).startswith("helm upgrade --install demo -n apps failed: ")
    assert "Error: " not in err.message


def test_pending_operation_hint_points_to_recovery():
    err = rh.translate_error(
        "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress",
        op="upgrade --install",
        release="demo",
        namespace="apps",
    )
    assert "recover_pending('demo', 'apps')" in err.hint and "helm rollback demo -n apps" in err.hint


def test_retry_after_is_parsed():
    err = rh.translate_error("Error: 429 Too Many Requests, Retry-After: 7", op="list")
    assert isinstance(err, TransientError) and err.retry_after == 7.0


def test_error_text_is_trimmed_and_redacted():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    stderr = "\n".join(
        [
            "WARNING: Kubernetes configuration file is group-readable. This is insecure.",
            "Error: INSTALLATION FAILED: Authorization: Bearer abc.def-123 rejected",
            f"token={jwt} password: hunter22 'apiKey': 'k-123456'",
            "hf_ABCDEFGHIJKLMNOPQRSTUVWX nvapi-abcdefghijklmnopqrstu my-own-value-1234",
            "blob QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk=",
            "Use --debug flag to render out invalid YAML",
            "x" * 2000,
        ]
    )
    err = rh.translate_error(
        stderr,
        op="upgrade --install",
        release="demo",
        secrets=rh.secret_leaves({"model": {"hfTokenValue": "my-own-value-1234"}}),
    )
    text = str(err)
    for secret in (
        "abc.def-123",
        jwt,
        "hunter22",
        "k-123456",
        "hf_ABC",
        "nvapi-abc",
        "my-own-value",
        "QUJDREVG",
    ):
        assert secret not in text, secret
    assert "WARNING" not in text and "--debug" not in text and "\n" not in text
    assert len(err.message) < 900 and err.message.endswith("...")


def test_watchdog_turns_a_hung_call_into_a_transient_error(helm):
    helm.watchdog_margin_s = 0

    async def hang() -> None:
        await asyncio.sleep(30)

    with pytest.raises(TransientError, match="did not finish within"):
        helm._call("status", hang, release="demo", timeout_s=0.2)


def test_small_parsers():
    assert rh.split_chart("dynamo-platform-0.9.1-rc.1") == ("dynamo-platform", "0.9.1-rc.1")
    assert rh.split_chart("gpu-operator-v25.3.0") == ("gpu-operator", "v25.3.0")
    assert rh.parse_time("2025-01-02 10:00:00.5 +0000 UTC").isoformat() == "2025-01-02T10:00:00.500000+00:00"
    assert rh.parse_time("2025-01-02T10:00:00+02:00").utcoffset().total_seconds() == 7200
    assert rh.parse_time("") is None
