"""Ownership by tag: a cluster that existed before the deployment (not carrying its deployment id) is
used, gets the spec's node pools, and survives the teardown, which removes only what the deployment
added. Same emulators and limits as test_contract.py (see its docstring).
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration


def _foreign_cluster(cloud) -> None:
    """Create the spec's cluster by hand, untagged, as someone else would have."""
    t = cloud.spec.target
    if cloud.kind == "eks":
        aws = cloud.provider.aws(t.region)
        role = aws.client("iam").create_role(RoleName="someone-elses", AssumeRolePolicyDocument="{}")["Role"][
            "Arn"
        ]
        subnets = [s["SubnetId"] for s in aws.client("ec2").describe_subnets()["Subnets"]][:2]
        aws.client("eks").create_cluster(
            name=t.cluster_name, roleArn=role, resourcesVpcConfig={"subnetIds": subnets}
        )
    elif cloud.kind == "gke":
        from google.cloud import container_v1

        from runtime.render import cloud_plan as plan

        gke = cloud.provider.gke
        gke.call(
            "create_cluster",
            parent=plan.gke_parent(t),
            cluster=container_v1.Cluster(
                name=t.cluster_name,
                node_pools=[container_v1.NodePool(name="default-pool", initial_node_count=1)],
            ),
        )
        time.sleep(0.1)  # the fake's operation clock
    else:
        from azure.mgmt.containerservice.models import ManagedCluster

        az = cloud.provider.azure(t.subscription_id)
        az.arm(
            "PUT",
            f"/subscriptions/{t.subscription_id}/resourcegroups/{t.resource_group}",
            "2021-04-01",
            {"location": t.location},
        )
        az.client.managed_clusters.begin_create_or_update(
            t.resource_group,
            t.cluster_name,
            ManagedCluster(
                {
                    "location": t.location,
                    "properties": {
                        "dnsPrefix": "theirs",
                        "agentPoolProfiles": [
                            {"name": "nodepool1", "mode": "System", "count": 1, "vmSize": "Standard_D2s_v5"}
                        ],
                    },
                }
            ),
        ).result()


def _still_there(cloud) -> bool:
    t = cloud.spec.target
    if cloud.kind == "eks":
        return (
            cloud.provider.aws(t.region).client("eks").describe_cluster(name=t.cluster_name)["cluster"]
            is not None
        )
    return any(True for _ in cloud.server.clusters)


@pytest.mark.parametrize("cloud", ["eks", "gke", "aks"], indirect=True)
def test_a_cluster_that_was_there_before_is_used_and_kept(cloud):
    _foreign_cluster(cloud)
    cloud.provision()
    found = cloud.inventory()
    kinds = {item.split("/", 1)[0] for item in found}
    assert (
        not {"eks:cluster", "gke:cluster", "aks:managed-cluster", "ec2:vpc", "azure:resource-group"} & kinds
    )
    pools = {p.name for p in cloud.spec.target.node_pools}
    assert {item.rsplit("/", 1)[-1] for item in found if "pool" in item or "nodegroup" in item} == pools
    cloud.teardown()
    assert cloud.inventory() == []
    assert _still_there(cloud)
