"""Stand-ins for the credentials blocks of prefect-aws, prefect-gcp and prefect-azure, which dynadeploy does
not install: same block type names (so the same slugs), same field names and secret fields, no SDK
methods. Saving one registers its block type and schema on the Prefect server, as
``prefect block register -m prefect_aws`` does for the real class; dynadeploy reads the saved document by
slug and name (tasks/secrets.py), exactly as it reads one the real classes saved.

Field names checked against prefect-aws (AwsCredentials), prefect-gcp (GcpCredentials) and prefect-azure
(AzureContainerInstanceCredentials).
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import Field, SecretStr


class AwsCredentials(Block):
    _block_type_name = "AWS Credentials"  # slug aws-credentials

    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: str | None = None
    profile_name: str | None = None
    region_name: str | None = None
    aws_client_parameters: dict[str, Any] = Field(default_factory=dict)


class GcpCredentials(Block):
    _block_type_name = "GCP Credentials"  # slug gcp-credentials

    service_account_file: str | None = None
    service_account_info: SecretDict | None = None
    project: str | None = None


class AzureContainerInstanceCredentials(Block):
    _block_type_name = "Azure Container Instance Credentials"  # slug azure-container-instance-credentials

    client_id: str | None = None
    tenant_id: str | None = None
    client_secret: SecretStr | None = None
    credential_kwargs: dict[str, Any] = Field(default_factory=dict)
