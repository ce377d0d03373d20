"""The kube target against a real cluster: deploy -> smoke -> teardown through the real flows.

Opt-in: runs only with DYNADEPLOY_E2E=1 and KUBECONFIG pointing at a cluster this identity may install
into (cluster-admin or the permissions the preflight lists). It pulls the real charts (helm.ngc.nvidia.com)
and images (nvcr.io), so the cluster needs registry access. Knobs:

    DYNADEPLOY_E2E_CONTEXT   kubeconfig context (default: the current one)
    DYNADEPLOY_E2E_ENGINE    mocker (default; no GPU needed) or vllm
    DYNADEPLOY_E2E_MODEL     Hugging Face model id for vllm (default Qwen/Qwen3-0.6B) ...
    DYNADEPLOY_E2E_REVISION  ... and its pinned commit sha (required with vllm)
    DYNADEPLOY_E2E_TOKEN_ENV an environment variable holding an HF token (optional)
    DYNADEPLOY_E2E_NAMESPACE the namespace to deploy into (default dynadeploy-e2e)

Everything the run creates is torn down at the end (also when it fails), and the test asserts that the
inventory by dynadeploy's labels is empty.
"""

from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

if os.environ.get("DYNADEPLOY_E2E") != "1" or not os.environ.get("KUBECONFIG"):
    pytest.skip(
        "set DYNADEPLOY_E2E=1 and KUBECONFIG to a real cluster to run the kube e2e test",
        allow_module_level=True,
    )


def _doc() -> dict:
    env = os.environ
    engine = env.get("DYNADEPLOY_E2E_ENGINE", "mocker")
    target = {
        "kind": "kube",
        "kubeconfig": env["KUBECONFIG"].split(os.pathsep)[0],
        "namespace": env.get("DYNADEPLOY_E2E_NAMESPACE", "dynadeploy-e2e"),
    }
    if env.get("DYNADEPLOY_E2E_CONTEXT"):
        target["context"] = env["DYNADEPLOY_E2E_CONTEXT"]
    doc = {
        "apiVersion": "dynadeploy.io/v1",
        "name": "dynadeploy-e2e",
        "target": target,
        "serving": {"topology": "agg", "engine": engine},
        "smoke": {"requests": 10, "concurrency": 2, "max_tokens": 16, "timeout_s": 300},
        "teardown": {"keep_model_cache": False, "keep_namespace": False},
    }
    if engine == "vllm":
        if not env.get("DYNADEPLOY_E2E_REVISION"):
            pytest.skip("DYNADEPLOY_E2E_ENGINE=vllm needs DYNADEPLOY_E2E_REVISION (the model's commit sha)")
        doc["model"] = {
            "id": env.get("DYNADEPLOY_E2E_MODEL", "Qwen/Qwen3-0.6B"),
            "revision": env["DYNADEPLOY_E2E_REVISION"],
        }
        if env.get("DYNADEPLOY_E2E_TOKEN_ENV"):
            doc["model"]["token"] = {"env": env["DYNADEPLOY_E2E_TOKEN_ENV"]}
        doc["serving"]["workers"] = {"replicas": 1, "gpus": 1}
    return doc


def test_deploy_smoke_teardown_on_a_real_cluster(prefect_api):
    from flows.deploy import deploy
    from flows.teardown import teardown

    doc = _doc()
    try:
        result = deploy(spec=doc)
        assert result["smoke"]["passed"], result["smoke"]
        again = deploy(spec=doc)
        assert (again["revision"], again["changed"]) == (result["revision"], False)
    finally:
        down = teardown(spec=doc, delete_model_cache=True)
    assert down["leftovers"] == []
