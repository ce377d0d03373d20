"""The google-cloud-container gateway of the GKE provider: client, retries, errors, operations, tokens.

- ``ClusterManagerClient(transport="rest")`` with the service account of the target's gcp-credentials
  block when the spec names one (its key as data or a key file; runtime/domain/credentials.py), else
  google.auth.default() (GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default login, workload
  identity). DYNADEPLOY_GKE_ENDPOINT overrides the API endpoint (a local fake in tests); without a block
  it also switches to AnonymousCredentials.
- Every call gets a google.api_core Retry on 429/500/502/503/504 with exponential backoff (the
  generated client retries only some reads by default, and never creates).
- Every SDK exception is translated into runtime.errors here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry, if_exception_type

from runtime import settings
from runtime.domain.waiting import Waits, WaitTimeout
from runtime.errors import DynadeployError, PermanentError, TransientError

T = TypeVar("T")
ENDPOINT_ENV = settings.GKE_ENDPOINT
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
_TRANSIENT = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
)


def translate(exc: BaseException, what: str) -> DynadeployError:
    text = f"{what}: {getattr(exc, 'message', None) or exc}"[:600]
    if isinstance(exc, _TRANSIENT):
        return TransientError(text, hint="GKE throttled or failed; rerun to continue where it stopped")
    if isinstance(exc, gexc.FailedPrecondition | gexc.Conflict | gexc.Aborted) or (
        isinstance(exc, gexc.BadRequest) and "operation" in str(exc).lower()
    ):
        return TransientError(text, hint="another operation is running on the cluster; rerun when it ends")
    if isinstance(exc, gexc.Unauthenticated | gexc.PermissionDenied | gexc.Forbidden):
        return PermanentError(
            text,
            hint="check GOOGLE_APPLICATION_CREDENTIALS (or gcloud auth "
            "application-default login) and its roles on the project",
        )
    if isinstance(exc, gexc.GoogleAPICallError):
        return PermanentError(text, hint="see the GKE message; rerunning continues where it stopped")
    from google.auth.exceptions import (  # google-auth: google-api-core needs it
        DefaultCredentialsError,
        RefreshError,
    )

    if isinstance(exc, RefreshError) and not getattr(exc, "retryable", False):
        return PermanentError(
            f"{what}: Google refused the credentials: {str(exc)[:300]}",
            hint="check the service account key (target.credentials block or "
            "GOOGLE_APPLICATION_CREDENTIALS): not revoked, of this project",
        )
    if isinstance(exc, DefaultCredentialsError):
        return PermanentError(
            f"{what}: no Google credentials",
            hint="set GOOGLE_APPLICATION_CREDENTIALS or run gcloud auth application-default login",
        )
    return TransientError(
        f"{what}: {type(exc).__name__}: {exc}"[:600], hint="check the network or DYNADEPLOY_GKE_ENDPOINT"
    )


def service_account_credentials(block: Any) -> Any:
    """google.oauth2 service account credentials (cloud-platform scope) from a gcp-credentials block."""
    from google.oauth2 import service_account

    try:
        if block.service_account_info is not None:
            return service_account.Credentials.from_service_account_info(
                block.service_account_info.reveal(), scopes=SCOPES
            )
        return service_account.Credentials.from_service_account_file(
            block.service_account_file, scopes=SCOPES
        )
    except (ValueError, KeyError, OSError) as exc:
        # The parser's message may quote the key material: say only what kind of failure it was.
        where = "service_account_info" if block.service_account_info is not None else "service_account_file"
        raise PermanentError(
            f"the service account key in {where} of gcp-credentials block {block.block!r} "
            f"cannot be loaded ({type(exc).__name__})",
            hint="edit the block: paste the JSON key file of a service account, or point "
            "service_account_file at one on the worker",
        ) from None


class Gke:
    """One ClusterManagerClient with retries, not-found handling and operation waits."""

    def __init__(
        self,
        *,
        waits: Waits | None = None,
        retry_initial_s: float = 1.0,
        retry_timeout_s: float = 300.0,
        credentials: Any = None,
    ):
        self.waits = waits or Waits(poll_s=10.0, timeout_s=2400.0)
        self.retry = Retry(
            predicate=if_exception_type(*_TRANSIENT),
            initial=retry_initial_s,
            maximum=30.0,
            multiplier=2.0,
            timeout=retry_timeout_s,
        )
        self.endpoint = settings.gke_endpoint()
        # a gcp-credentials block's runtime.domain.credentials.GcpCredentials; None (or an empty block): default chain
        self.block = credentials if credentials is not None and not credentials.default_chain else None
        self._client: Any = None
        self._credentials: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import container_v1

            options = ClientOptions(api_endpoint=self.endpoint) if self.endpoint else None
            try:
                if self.block is not None:
                    self._credentials = service_account_credentials(self.block)
                    # the API of the key's universe (googleapis.com unless the key says otherwise)
                    options = ClientOptions(
                        api_endpoint=self.endpoint, universe_domain=self._credentials.universe_domain
                    )
                elif self.endpoint:
                    from google.auth.credentials import AnonymousCredentials

                    self._credentials = AnonymousCredentials()
                else:
                    import google.auth

                    self._credentials, _ = google.auth.default(scopes=SCOPES)
                self._client = container_v1.ClusterManagerClient(
                    transport="rest", credentials=self._credentials, client_options=options
                )
            except DynadeployError:
                raise
            except Exception as exc:  # credentials discovery and client construction
                raise translate(exc, "creating the GKE client") from exc
        return self._client

    def call(self, method: str, /, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(**kwargs, retry=self.retry, timeout=60.0)
        except DynadeployError:
            raise
        except Exception as exc:
            raise translate(exc, f"container.{method}") from exc

    def get(self, method: str, /, *, absent: type[Exception] = gexc.NotFound, **kwargs: Any) -> Any:
        """Like ``call``; None on NotFound (or on ``absent``: AlreadyExists for creates)."""
        try:
            return getattr(self.client, method)(**kwargs, retry=self.retry, timeout=60.0)
        except absent:
            return None
        except DynadeployError:
            raise
        except Exception as exc:
            raise translate(exc, f"container.{method}") from exc

    def create(self, method: str, /, **kwargs: Any) -> Any:
        """A create call; None when the object already exists."""
        return self.get(method, absent=gexc.AlreadyExists, **kwargs)

    def create_cluster(self, parent: str, cluster: dict[str, Any]) -> Any:
        """create_cluster from the plan's cluster (plain data, runtime/render/cloud_plan.py), built into the
        SDK's Cluster message here so the provider handles no SDK type; None when it already exists."""
        from google.cloud import container_v1

        return self.create("create_cluster", parent=parent, cluster=container_v1.Cluster(cluster))

    def create_node_pool(self, parent: str, node_pool: dict[str, Any]) -> Any:
        """create_node_pool from the plan's pool (plain data); None when it already exists."""
        from google.cloud import container_v1

        return self.create("create_node_pool", parent=parent, node_pool=container_v1.NodePool(node_pool))

    def wait(self, check: Callable[[], T | None], *, what: str) -> T:
        """Poll ``check`` until it returns something other than None; a TransientError on timeout."""
        try:
            return self.waits.until(check, what=what)
        except WaitTimeout:
            raise TransientError(
                f"timed out waiting for {what}", hint="GKE is slow or stuck; rerun to keep waiting"
            ) from None

    def wait_operation(self, parent: str, operation: Any, *, what: str) -> None:
        """Poll an Operation (by name, under ``parent`` = projects/P/locations/L) until DONE."""
        from google.cloud import container_v1

        name = f"{parent}/operations/{operation.name.rsplit('/', 1)[-1]}"

        def done() -> bool | None:
            op = self.call("get_operation", name=name)
            if op.status != container_v1.Operation.Status.DONE:
                return None
            message = op.error.message if op.error and op.error.message else op.status_message
            if message:
                raise PermanentError(f"{what} failed: {message}", hint="see the operation in the GKE console")
            return True

        self.wait(done, what=what)

    def token(self) -> tuple[str | None, float | None]:
        """A bearer token for the cluster API and its expiry (None under the endpoint override without a
        credentials block)."""
        if self.endpoint and self.block is None:
            return None, None
        _ = self.client  # resolves the credentials
        try:
            import google.auth.transport.requests

            self._credentials.refresh(google.auth.transport.requests.Request())
        except Exception as exc:
            raise translate(exc, "refreshing the Google access token") from exc
        expiry = self._credentials.expiry  # naive UTC
        return self._credentials.token, expiry.replace(tzinfo=UTC).timestamp() if expiry else None
