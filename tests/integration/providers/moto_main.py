"""Start moto's server for the provider tests: ``python -m tests.integration.providers.moto_main PORT``.

Same as ``MOTO_IAM_LOAD_MANAGED_POLICIES=true moto_server -H 127.0.0.1 -p PORT`` except that only the
AWS managed policies the providers attach are loaded (real policy documents from moto's bundled
copy), and EC2 starts without its default AMI catalogue. Loading all ~1600 costs several seconds on every IAM backend moto builds, i.e. after every
POST /moto-api/reset; with this subset the suite stays fast. Attaching any other AWS managed
policy gives NoSuchEntity, as it would with the flag unset.
Set DYNADEPLOY_MOTO_ALL_POLICIES=1 to load them all.
"""

from __future__ import annotations

import json
import os
import sys

USED = {
    "AmazonEKSClusterPolicy",
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonEBSCSIDriverPolicy",
    "AmazonEFSCSIDriverPolicy",
    "AmazonECSTaskExecutionRolePolicy",
    "AmazonEC2ContainerServiceforEC2Role",
}


def main() -> None:
    port = sys.argv[1] if len(sys.argv) > 1 else "5000"
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    # The default AMI catalogue costs seconds per EC2 backend (after every reset); the providers take
    # AMIs from SSM parameters and EKS AMI types, never from describe_images.
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    if not os.environ.get("DYNADEPLOY_MOTO_ALL_POLICIES"):
        from moto.iam import aws_managed_policies, models

        data = json.loads(aws_managed_policies.aws_managed_policies_data)
        missing = USED - set(data)
        if missing:
            raise SystemExit(f"moto has no managed policy data for {sorted(missing)}")
        models.aws_managed_policies_data = json.dumps({k: v for k, v in data.items() if k in USED})
    from moto.server import main as moto_main

    moto_main(["-H", "127.0.0.1", "-p", port])


if __name__ == "__main__":
    main()
