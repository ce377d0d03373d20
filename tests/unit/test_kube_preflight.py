"""The kube preflight's decisions on plain objects (runtime/targets/kube/preflight.py): GPU accounting, operator
conflicts, CRD versions, the permission list and server versions. The checks against a cluster are in
tests/integration/kube/test_stages.py."""

from __future__ import annotations

import pytest

from runtime.errors import PreflightError
from runtime.spec import parse_spec
from runtime.targets.kube import access
from runtime.targets.kube import preflight as pf


def spec(**sections):
    doc = {"apiVersion": "dynadeploy.io/v1", "name": "demo", "target": {"kind": "kube"}, **sections}
    return parse_spec(doc)


def node(name, alloc=0, labels=None, unschedulable=False):
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": unschedulable} if unschedulable else {},
        "status": {"allocatable": {"nvidia.com/gpu": str(alloc)} if alloc else {}},
    }


def pod(node_name, gpus, deployment=None, phase="Running"):
    labels = {"dynadeploy.io/deployment": deployment} if deployment else {}
    return {
        "metadata": {"name": "p", "labels": labels},
        "spec": {
            "nodeName": node_name,
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        },
        "status": {"phase": phase},
    }


def test_gpu_inventory_counts_allocatable_minus_other_workloads():
    inv = pf.gpu_inventory(
        [node("a", 8), node("b", 4), node("cpu")],
        [pod("a", 3), pod("a", 2, deployment="demo"), pod("b", 4, phase="Succeeded")],
        "demo",
    )
    assert inv.reporting and inv.gpu_nodes == ["a", "b"]
    assert (inv.total, inv.free, inv.max_free_per_node) == (12, 9, 5)


def test_gpu_inventory_falls_back_to_labels_before_a_device_plugin_runs():
    inv = pf.gpu_inventory(
        [
            node("a", labels={"nvidia.com/gpu.count": "4"}),
            node("b", labels={"nvidia.com/gpu.present": "true"}),
            node("c", labels={"nvidia.com/gpu.count": "8"}, unschedulable=True),
        ],
        [],
        "demo",
    )
    assert not inv.reporting and inv.gpu_nodes == ["a", "b"] and inv.total == 5


def op(release, ns, cluster_wide, version=None):
    return pf.Operator(release, ns, f"{release}-dynamo-operator-manager-role", cluster_wide, version)


def test_operator_conflicts_by_mode():
    cluster, namespaced = spec(), spec(platform={"operator_mode": "namespace"})
    assert pf.operator_problems(cluster, [op("dynamo-platform", "dynamo-system", True, "1.6.1")]) == []
    assert pf.reusable_operator(cluster, [op("dynamo-platform", "dynamo-system", True)]) is None
    other = op("other", "other-ns", True, "1.6.0")
    assert pf.operator_problems(cluster, [other]) == [] and pf.reusable_operator(cluster, [other]) == other
    (p,) = pf.operator_problems(cluster, [op("other", "other-ns", True, "1.5.2")])
    assert "pins Dynamo 1.6.1" in p.problem and "1.5.2" in p.fix
    (p,) = pf.operator_problems(cluster, [op("team", "team-a", False), op("team", "team-b", False)])
    assert "namespaces team-a, team-b" in p.problem
    # Dynamo 1.x: a namespace-restricted operator uses the CRDs of a cluster-wide one (issue 10, defect 4),
    # so a cluster-wide operator of the same release line is what namespace mode needs, not a conflict.
    assert pf.operator_problems(namespaced, [other]) == []
    assert (
        pf.operator_problems(
            namespaced, [other, op("team", "team-a", False), op("dynamo-platform", "demo", False)]
        )
        == []
    )
    (p,) = pf.operator_problems(namespaced, [other, op("someone", "demo", False)])
    assert "already installed in demo" in p.problem


def test_old_crds_matter_only_when_this_run_does_not_manage_them():
    crd = {"spec": {"versions": [{"name": "v1alpha1", "served": True}]}}
    crds = {pf.DGD_CRD: crd}
    assert pf.crd_problems(spec(), crds, []) == []  # the cluster-wide install applies newer CRDs
    assert pf.crd_problems(spec(platform={"operator_mode": "namespace"}), crds, [])
    assert pf.crd_problems(spec(), crds, [op("other", "x", True, "1.6.0")])  # someone else's operator
    served = {pf.DGD_CRD: {"spec": {"versions": [{"name": "v1beta1", "served": True}]}}}
    assert pf.crd_problems(spec(platform={"operator_mode": "namespace"}), served, []) == []


def test_the_permission_list_follows_the_spec():
    base = access.required_access(spec(), download=False, token=False, install_platform=False)
    names = {str(a) for a in base}
    assert "create dynamographdeployments.nvidia.com in namespace demo" in names
    assert "list nodes cluster-wide" in names and not any("jobs" in n or "secrets" in n for n in names)
    full = {str(a) for a in access.required_access(spec(), download=True, token=True, install_platform=True)}
    assert {
        "create jobs.batch in namespace demo",
        "patch secrets in namespace demo",
        "create clusterroles.rbac.authorization.k8s.io cluster-wide",
        "create customresourcedefinitions.apiextensions.k8s.io cluster-wide",
    } <= full
    assert (
        access.Access("get", "pods", "", "demo", "log").check_command()
        == "kubectl auth can-i get pods/log -n demo"
    )


@pytest.mark.parametrize(
    ("version", "minor"),
    [
        ({"major": "1", "minor": "33+"}, (1, 33)),
        ({"major": "", "minor": "", "gitVersion": "v1.29.4-gke.1"}, (1, 29)),
    ],
)
def test_server_versions(version, minor):
    assert pf.server_minor(version) == minor
    assert bool(pf.version_problems(version)) == (minor < (1, 30))


def test_problems_are_raised_together_with_their_fixes():
    with pytest.raises(PreflightError) as info:
        pf.raise_problems([pf.Problem("a is wrong", "fix a"), pf.Problem("b is wrong", "fix b")], "cluster X")
    assert str(info.value).startswith(
        "preflight of cluster X found 2 problem(s), nothing was changed: (1) a is wrong; (2) b is wrong"
    )
    assert info.value.hint == "(1) fix a; (2) fix b" and len(info.value.problems) == 2
    pf.raise_problems([], "cluster X")


def test_namespace_mode_needs_a_cluster_wide_operator_first_and_says_how_to_install_it():
    namespaced = spec(platform={"operator_mode": "namespace"})
    (p,) = pf.operator_problems(namespaced, [op("team", "team-a", False)])
    assert "needs a cluster-wide Dynamo operator first" in p.problem and "upgradeCRD: false" in p.problem
    assert (
        "helm install dynamo-platform https://helm.ngc.nvidia.com/nvidia/ai-dynamo/charts/"
        "dynamo-platform-1.6.1.tgz -n dynamo-system"
        in p.fix
        and "operator_mode: cluster" in p.fix
    )
    (p,) = pf.operator_problems(namespaced, [op("other", "other-ns", True, "1.5.2")])
    assert "provides the cluster's Dynamo CRDs, but the spec pins Dynamo 1.6.1" in p.problem
    # the CRDs must be there (the chart brings none in this mode)
    (p,) = pf.crd_problems(namespaced, {}, [op("other", "other-ns", True, "1.6.0")])
    assert "CRD is not installed" in p.problem and "ships no CRDs" in p.problem
    assert pf.crd_problems(namespaced, {}, []) == []  # operator_problems already says what to install first
