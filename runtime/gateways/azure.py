"""The azure-mgmt-containerservice gateway of the AKS provider: client, retries, errors, ARM calls.

- ``ContainerServiceClient(credential, subscription_id, base_url=...)``. The credential: the service
  principal of the target's azure-container-instance-credentials block when the spec names one
  (ClientSecretCredential with the block's credential_kwargs; runtime/domain/credentials.py), else
  DefaultAzureCredential (AZURE_CLIENT_ID/SECRET/TENANT_ID, managed identity, az login).
  DYNADEPLOY_AKS_ENDPOINT overrides the ARM base URL. Only when that URL is http://127.0.0.1 (a local
  fake) is a bearer policy that allows plain http used (toolchain.md's recipe), and without a block a
  static test credential.
- azure-core's RetryPolicy retries 408/429/5xx and connection errors with backoff and honours
  Retry-After; long-running operations poll at the interval ARM's Retry-After asks for.
- Resource groups go through the same pipeline (client.send_request) because azure-mgmt-resource is
  not a dependency; the ARM resource-group REST calls are small.
- Every SDK exception is translated into runtime.errors here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from runtime import settings
from runtime.domain.waiting import Waits, WaitTimeout
from runtime.errors import DynadeployError, PermanentError, TransientError

T = TypeVar("T")
ENDPOINT_ENV = settings.AKS_ENDPOINT
RESOURCE_GROUP_API = "2021-04-01"
# The AKS AAD server application: tokens for this audience work against AAD-enabled clusters.
AKS_AAD_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
_BUSY_CODES = ("OperationNotAllowed", "AnotherOperationInProgress", "Conflict", "EtagMismatch")


def translate(exc: BaseException, what: str) -> DynadeployError:
    status = getattr(getattr(exc, "response", None), "status_code", None) or getattr(exc, "status_code", None)
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or ""
    detail = (
        getattr(error, "message", None) or str(getattr(exc, "message", None) or exc).strip().splitlines()[0]
    )
    text = f"{what}: {code + ': ' if code and code not in detail else ''}{detail}"[:600]
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return PermanentError(
            text,
            hint="check the Azure credentials (the target.credentials block, or "
            "AZURE_CLIENT_ID/SECRET/TENANT_ID or az login) and their role on the "
            "subscription",
        )
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientError(text, hint="check the network or DYNADEPLOY_AKS_ENDPOINT")
    if status == 429 or (status or 0) >= 500 or status == 409 or code in _BUSY_CODES:
        return TransientError(text, hint="Azure throttled, failed or is busy with another operation; rerun")
    if isinstance(exc, HttpResponseError):
        return PermanentError(text, hint="see the Azure message; rerunning continues where it stopped")
    return TransientError(f"{what}: {type(exc).__name__}: {exc}"[:600])


def _loopback_http(url: str | None) -> bool:
    return url is not None and (url.startswith("http://127.0.0.1:") or url == "http://127.0.0.1")


class _StaticCredential:
    """A token credential for a local fake (never sent anywhere else)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("fake-aks-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo("fake-aks-token", int(time.time()) + 3600)


def _http_bearer_policy(credential: Any, scope: str) -> Any:
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy

    class _AllowHttp(BearerTokenCredentialPolicy):
        def on_request(self, request: Any) -> None:
            request.context.options["enforce_https"] = False
            super().on_request(request)

    return _AllowHttp(credential, scope)


def azure_credential(block: Any) -> Any:
    """The azure-identity credential of an azure-container-instance-credentials block: ClientSecretCredential
    for its service principal, DefaultAzureCredential when it has none; its credential_kwargs go to either."""
    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    try:
        if block.default_chain:
            return DefaultAzureCredential(**block.kwargs)
        return ClientSecretCredential(
            block.tenant_id, block.client_id, block.client_secret.reveal(), **block.kwargs
        )
    except (TypeError, ValueError) as exc:  # bad credential_kwargs or ids; the messages quote no secret
        raise PermanentError(
            f"azure-container-instance-credentials block {block.block!r}: {exc}"[:600],
            hint="edit the block: check tenant_id, client_id and credential_kwargs",
        ) from None


class Azure:
    """One ContainerServiceClient per subscription, with error translation and bounded waits."""

    def __init__(
        self,
        subscription_id: str,
        *,
        waits: Waits | None = None,
        polling_interval: float = 15.0,
        retry_total: int = 8,
        credentials: Any = None,
    ) -> None:
        self.subscription_id = subscription_id
        self.waits = waits or Waits(poll_s=15.0, timeout_s=2400.0)
        self.endpoint = settings.aks_endpoint()
        self.polling_interval = polling_interval
        self.retry_total = retry_total
        self.block = credentials  # an azure-container-instance-credentials block's AzureCredentials, or None
        self._client: Any = None
        self.credential: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from azure.mgmt.containerservice import ContainerServiceClient

            kwargs: dict[str, Any] = {
                "polling_interval": self.polling_interval,
                "retry_total": self.retry_total,
            }
            if self.endpoint:
                kwargs["base_url"] = self.endpoint
            try:
                if self.block is not None:
                    self.credential = azure_credential(self.block)
                elif _loopback_http(self.endpoint):
                    self.credential = _StaticCredential()
                else:
                    from azure.identity import DefaultAzureCredential

                    self.credential = DefaultAzureCredential()
                if _loopback_http(self.endpoint):
                    kwargs["authentication_policy"] = _http_bearer_policy(
                        self.credential, "https://management.azure.com/.default"
                    )
                self._client = ContainerServiceClient(self.credential, self.subscription_id, **kwargs)
            except DynadeployError:
                raise
            except Exception as exc:
                raise translate(exc, "creating the AKS client") from exc
        return self._client

    def call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except DynadeployError:
            raise
        except Exception as exc:
            raise translate(exc, what) from exc

    def get(self, what: str, fn: Callable[[], T]) -> T | None:
        """``fn()``, or None when the object does not exist."""
        try:
            return fn()
        except ResourceNotFoundError:
            return None
        except HttpResponseError as exc:
            if getattr(exc, "status_code", None) == 404:
                return None
            raise translate(exc, what) from exc
        except DynadeployError:
            raise
        except Exception as exc:
            raise translate(exc, what) from exc

    def create(self, what: str, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except ResourceExistsError:
            return None
        except DynadeployError:
            raise
        except Exception as exc:
            raise translate(exc, what) from exc

    def wait(self, check: Callable[[], T | None], *, what: str) -> T:
        """Poll ``check`` until it returns something other than None; a TransientError on timeout."""
        try:
            return self.waits.until(check, what=what)
        except WaitTimeout:
            raise TransientError(
                f"timed out waiting for {what}", hint="Azure is slow or stuck; rerun to keep waiting"
            ) from None

    def begin_create_cluster(self, resource_group: str, name: str, cluster: dict[str, Any]) -> Any:
        """Start a managed cluster's create-or-update from its plan (plain data, runtime/render/cloud_plan.py);
        the SDK's model object is built here so the provider handles no SDK type. Returns the poller."""
        from azure.mgmt.containerservice.models import ManagedCluster

        body = ManagedCluster(cluster)
        return self.call(
            "managedClusters.begin_create_or_update",
            lambda: self.client.managed_clusters.begin_create_or_update(resource_group, name, body),
        )

    def begin_create_agent_pool(
        self, resource_group: str, cluster: str, name: str, properties: dict[str, Any]
    ) -> Any:
        """Start an agent pool's create-or-update from its plan's properties (plain data). Returns the poller."""
        from azure.mgmt.containerservice.models import AgentPool

        body = AgentPool({"properties": properties})
        return self.call(
            "agentPools.begin_create_or_update",
            lambda: self.client.agent_pools.begin_create_or_update(resource_group, cluster, name, body),
        )

    def arm(self, method: str, path: str, api_version: str, body: Any = None) -> tuple[int, Any]:
        """A raw ARM request through the client's pipeline (auth, retries): (status, json or None)."""
        from azure.core.rest import HttpRequest

        sep = "&" if "?" in path else "?"
        request = HttpRequest(method, f"{path}{sep}api-version={api_version}", json=body)

        def send() -> tuple[int, Any]:
            response = self.client.send_request(request)
            if response.status_code >= 400 and response.status_code != 404:
                response.raise_for_status()
            try:
                payload = response.json() if response.content else None
            except ValueError:
                payload = None
            return response.status_code, payload

        return self.call(f"ARM {method} {path}", send)

    def user_token(self) -> str:
        """An AAD token for AAD-enabled clusters (the audience kubelogin asks for)."""
        _ = self.client
        return self.call("getting an AKS AAD token", lambda: self.credential.get_token(AKS_AAD_SCOPE).token)
