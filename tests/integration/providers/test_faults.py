"""Faults: throttling and 5xx during create and delete, and runs killed part-way, must converge
without duplicates, for every provider.

How faults are injected (no monkeypatching of the providers or the SDKs):
- eks, ecs: AwsFaultProxy, a loopback HTTP proxy between botocore and moto (AWS_ENDPOINT_URL points at
  it). Throttling answers use each protocol's wire format (ThrottlingException, Throttling,
  RequestLimitExceeded), 5xx answers are bare 503s; both are given before moto sees the request, as
  AWS's front end does, and botocore's standard retry mode must absorb them.
- gke, aks: the fakes answer 429/503 (with Retry-After; ARM also retry-after-ms) themselves.
- "killed": ``faults.kill_after(k)`` lets k requests through, then answers every request with a
  non-retryable 400 KilledByTest until cleared: the run stops at its k-th call, as if the process
  died; cloud-side operations already started (GKE/AKS) keep running on the fake's clock. The rerun
  must pick up whatever state it finds (half-created VPCs, clusters still Creating, pools missing).

Not modeled: faults after the cloud applied a request (a lost response; idempotency tokens and
create-or-get cover those on AWS, AlreadyExists on GKE/AKS, but no test injects them), partial
failures inside one cloud operation, and clock-driven cloud behaviour on moto (everything there is
immediate).
"""

from __future__ import annotations

import pytest

from runtime.errors import DynadeployError

pytestmark = pytest.mark.integration

# (status, operation regex): 429 = throttling in the protocol's format, 503 = bare 5xx. Each rule
# fires once, on different calls, so every retry layer is exercised without long backoffs.
CREATE_FAULTS = {
    "eks": [
        (429, r"^CreateRole$"),
        (503, r"^CreateVpc$"),
        (429, r"^DescribeSubnets$"),
        (429, r"^POST /clusters$"),
        (503, r"^POST /clusters/[^/]+/node-groups$"),
        (429, r"^POST /2015-02-01/file-systems$"),
        (503, r"^CreateMountTarget$|/mount-targets$"),
    ],
    "ecs": [
        (429, r"^CreateCluster$"),
        (503, r"^CreateRole$"),
        (429, r"^CreatePrivateDnsNamespace$"),
        (503, r"^RegisterTaskDefinition$"),
        (429, r"^CreateService$"),
        (503, r"^CreateAutoScalingGroup$"),
        (429, r"^CreateSecret$"),
        (503, r"^CreateLogGroup$"),
    ],
    "gke": [(429, r"/clusters$"), (503, r"/operations/"), (503, r"/nodePools$"), (429, r"/nodePools/gpu$")],
    "aks": [
        (429, r"/resourcegroups/[^/]+$"),
        (503, r"/managedClusters/[^/]+$"),
        (429, r"/operations/"),
        (503, r"/agentPools/[^/]+$"),
    ],
}
DELETE_FAULTS = {
    "eks": [
        (429, r"^DELETE /clusters/[^/]+/node-groups/"),
        (503, r"^DELETE /clusters/[^/]+$"),
        (429, r"^DeleteVpc$"),
        (503, r"^DeleteRole$"),
        (429, r"^DELETE /2015-02-01/file-systems/"),
        (503, r"^DeleteSubnet$"),
    ],
    "ecs": [
        (429, r"^DeleteService$"),
        (503, r"^DeregisterTaskDefinition$"),
        (429, r"^DeleteCluster$"),
        (503, r"^DeleteNamespace$"),
        (429, r"^DeleteAutoScalingGroup$"),
        (503, r"^DeleteLogGroup$"),
        (429, r"^DeleteSecret$"),
    ],
    "gke": [(429, r"/clusters/[^/]+$"), (503, r"/operations/")],
    "aks": [(429, r"/managedClusters/[^/]+$"), (503, r"/resourcegroups/[^/]+$"), (429, r"/operations/")],
}


def _arm(cloud, plan: dict) -> int:
    for status, path in plan[cloud.kind]:
        cloud.faults.add(status=status, times=1, path=path, retry_after=0.05)
    return len(plan[cloud.kind])


def _reference(cloud, reference_shapes) -> tuple:
    """(inventory shape, number of calls) of a clean provision: from the contract test when it ran
    first in this session, else measured here."""
    if cloud.kind not in reference_shapes:
        cloud.mark()
        cloud.provision()
        reference_shapes[cloud.kind] = (cloud.shape(), len(cloud.server.requests))
        cloud.teardown()
        assert cloud.inventory() == []
    return reference_shapes[cloud.kind]


def test_throttling_and_5xx_during_create_converge_without_duplicates(cloud, reference_shapes):
    expected, _ = _reference(cloud, reference_shapes)
    rules = _arm(cloud, CREATE_FAULTS)
    cloud.provision()
    assert cloud.faults.injected == rules, "every injected fault was met and retried"
    assert cloud.shape() == expected, "retries created nothing twice and nothing is missing"
    cloud.mark()
    cloud.provision()
    assert cloud.mutations() == []


def test_throttling_and_5xx_during_delete_converge(cloud):
    cloud.provision()
    rules = _arm(cloud, DELETE_FAULTS)
    cloud.teardown()
    assert cloud.faults.injected == rules
    assert cloud.inventory() == []


def test_killed_provisioning_then_rerun_converges(cloud, reference_shapes):
    expected, total = _reference(cloud, reference_shapes)  # total: calls of a whole provisioning
    for fraction in (0.35, 0.8):
        cloud.faults.kill_after(int(total * fraction))
        with pytest.raises(DynadeployError):
            cloud.provision()
        cloud.faults.clear()
        cloud.provision()
        assert cloud.shape() == expected, f"rerun after a kill at {fraction:.0%} did not converge"
        cloud.teardown()
        assert cloud.inventory() == []


def test_killed_teardown_then_rerun_converges(cloud):
    cloud.provision()
    cloud.faults.kill_after(max(2, len(cloud.server.requests) // 5))  # part-way into the teardown
    with pytest.raises(DynadeployError):
        cloud.teardown()
    cloud.faults.clear()
    assert cloud.inventory(), "the killed teardown stopped part-way"
    cloud.teardown()
    assert cloud.inventory() == []
