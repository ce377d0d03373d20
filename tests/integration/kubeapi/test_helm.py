"""The real helm CLI, Helm 4 (4.1.4) and Helm 3 (3.18.0), against the simulator: install / upgrade /
history / rollback / uninstall of tests/harness/charts/testchart (a CRD in crds/, a custom resource of
it, a ConfigMap, a Deployment, a Job and a post-install hook Job) with --wait.

Simulated here: helm's release storage (protobuf Secrets), Helm 4's server-side apply and kstatus
watch-based --wait (WatchList with the initial-events-end bookmark), Helm 3's POST + three-way strategic
merge patch and polling --wait (Deployment -> owned ReplicaSet readiness), hook Jobs watched to
completion, CRD install then discovery refresh. Readiness comes from the small built-in controller
(controllers_basic): no pods are run.
Not simulated: admission webhooks, real scheduling or images, OpenAPI schema validation of fields.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.harness.kubeapi import BasicControllers
from tests.harness.kubeapi.helmrelease import read_release, release_secrets

from .conftest import CHART, Tool, require_binary

pytestmark = pytest.mark.integration


def test_install_upgrade_history_rollback_uninstall(kubeapi, helm):
    store, log = kubeapi.store, kubeapi.requests
    ch = str(CHART)
    helm("install", "rel", ch, "-n", "apps", "--create-namespace", "--wait", "--timeout", "60s")

    secrets = release_secrets(store, "rel", "apps")
    assert [s["metadata"]["labels"]["status"] for s in secrets] == ["deployed"]
    assert secrets[0]["metadata"]["name"] == "sh.helm.release.v1.rel.v1"
    posts = log.find(method="POST", path="/namespaces/apps/secrets$")
    assert posts and all(r.content_type == "application/vnd.kubernetes.protobuf" for r in posts)
    assert store.registry.by_kind("sim.example.com/v1", "Widget") is not None  # CRD from crds/
    assert store.get("sim.example.com/v1", "Widget", "rel-widget", "apps")["spec"]["size"] == 1
    assert store.get("v1", "ConfigMap", "rel-config", "apps")["data"] == {"message": "hello"}
    job = store.get("batch/v1", "Job", "rel-migrate", "apps")
    assert job["status"]["succeeded"] == 1
    assert store.try_get("batch/v1", "Job", "rel-post-install", "apps") is None  # hook-succeeded: deleted
    if helm.major == 4:
        applies = log.find(
            method="PATCH", path="/namespaces/apps/configmaps/rel-config$", fieldManager="helm"
        )
        assert applies and applies[0].content_type == "application/apply-patch+yaml"
        assert log.find(verb="watch", sendInitialEvents="true")  # kstatus WatchList
    else:
        assert log.find(method="POST", path="/namespaces/apps/configmaps$", fieldManager="helm")

    helm(
        "upgrade",
        "rel",
        ch,
        "-n",
        "apps",
        "--set",
        "message=bye",
        "--set",
        "replicas=2",
        "--wait",
        "--timeout",
        "60s",
    )
    assert store.get("v1", "ConfigMap", "rel-config", "apps")["data"] == {"message": "bye"}
    dep = store.get("apps/v1", "Deployment", "rel-web", "apps")
    assert dep["spec"]["replicas"] == 2 and dep["metadata"]["generation"] == 2
    assert dep["status"]["observedGeneration"] == 2

    history = json.loads(helm("history", "rel", "-n", "apps", "-o", "json").out)
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]

    helm("rollback", "rel", "1", "-n", "apps", "--wait", "--timeout", "60s")
    history = json.loads(helm("history", "rel", "-n", "apps", "-o", "json").out)
    assert [(h["revision"], h["status"]) for h in history] == [
        (1, "superseded"),
        (2, "superseded"),
        (3, "deployed"),
    ]
    assert read_release(store, "rel", "apps")["info"]["description"] == "Rollback to 1"
    assert store.get("v1", "ConfigMap", "rel-config", "apps")["data"] == {"message": "hello"}
    assert store.get("apps/v1", "Deployment", "rel-web", "apps")["spec"]["replicas"] == 1

    helm("uninstall", "rel", "-n", "apps")
    assert release_secrets(store, "rel", "apps") == []
    assert store.try_get("v1", "ConfigMap", "rel-config", "apps") is None
    assert store.try_get("apps/v1", "Deployment", "rel-web", "apps") is None
    assert store.list("apps/v1", "ReplicaSet", "apps") == []  # garbage-collected
    assert store.try_get("sim.example.com/v1", "Widget", "rel-widget", "apps") is None
    assert store.registry.by_kind("sim.example.com/v1", "Widget") is not None  # helm keeps CRDs
    assert "rel" not in helm("list", "-n", "apps").out


def test_helm_decodes_protobuf_replies(kubeapi, helm4):
    """With prefer_protobuf the simulator answers helm's Secret reads in protobuf: Go's decoder accepts
    what the simulator's encoder writes (the other direction is every helm install)."""
    helm4("install", "pb", str(CHART), "-n", "default")
    kubeapi.server.prefer_protobuf = True
    helm4("upgrade", "pb", str(CHART), "-n", "default", "--set", "message=x")
    history = json.loads(helm4("history", "pb", "-n", "default", "-o", "json").out)
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]
    helm4("uninstall", "pb", "-n", "default")
    pb = [
        r
        for r in kubeapi.requests.find(path="/secrets")
        if r.response_type == "application/vnd.kubernetes.protobuf"
    ]
    assert {r.verb for r in pb} >= {"list", "create", "update", "delete"}
    assert release_secrets(kubeapi.store, "pb", "default") == []


def test_pyhelm3_round_trip(kubeapi, helm):
    """pyhelm3 (the project's helm facade underneath) drives the same binary; create_namespace=True works
    because the simulator's OpenAPI v3 lets helm validate the Namespace server-side."""
    import asyncio
    import os

    from pyhelm3 import Client

    async def scenario() -> tuple:
        c = Client(executable=helm.path, kubeconfig=str(kubeapi.kubeconfig))
        chart = await c.get_chart(str(CHART))
        first = await c.install_or_upgrade_release(
            "py", chart, {"message": "one"}, namespace="pyns", create_namespace=True, wait=True, timeout="60s"
        )
        second = await c.install_or_upgrade_release(
            "py", chart, {"message": "two"}, namespace="pyns", wait=True, timeout="60s"
        )
        current = await c.get_current_revision("py", namespace="pyns")
        kinds = sorted(r["kind"] for r in await current.resources())
        await c.uninstall_release("py", namespace="pyns", wait=True)
        return first.revision, second.revision, kinds

    saved = dict(os.environ)
    os.environ.update(kubeapi.env)  # pyhelm3 passes the process environment to helm
    try:
        assert asyncio.run(scenario()) == (1, 2, ["ConfigMap", "Deployment", "Job", "Widget"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert release_secrets(kubeapi.store, "py", "pyns") == []


def test_wait_follows_readiness(kubeapi_bare):
    """--wait is not vacuous: with no controller helm times out; with a slow one it waits for it."""
    helm = Tool(require_binary("helm", 4), kubeapi_bare.env)
    res = helm(
        "install", "slow", str(CHART), "--set", "hook.enabled=false", "--wait", "--timeout", "2s", check=False
    )
    assert res.rc != 0 and "not ready" in res.err
    assert read_release(kubeapi_bare.store, "slow", "default")["info"]["status"] == "failed"
    kubeapi_bare.add_controller(BasicControllers(delay=1.0), every=0.05)
    t0 = time.monotonic()
    helm(
        "upgrade",
        "slow",
        str(CHART),
        "--set",
        "hook.enabled=false",
        "--set",
        "message=later",
        "--wait",
        "--timeout",
        "30s",
    )
    assert time.monotonic() - t0 >= 1.0
    assert read_release(kubeapi_bare.store, "slow", "default")["info"]["status"] == "deployed"
