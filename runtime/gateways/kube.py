"""The Kubernetes gateway: the only module that talks to the kubernetes Python client.

Everything above it (runtime/targets/kube/backend.py, tasks, flows) deals in plain dicts and the project's
errors. What it does for its callers:

- loads the client lazily from a kubeconfig path + context (the SDK is imported on first use);
- translates every failure into runtime.errors (``translate``): 429, 5xx, 409 conflicts, 410, timeouts
  and connection errors become TransientError (with ``retry_after`` from the Retry-After header); 403
  becomes a PermanentError whose hint names the verb and resource to grant; 401 asks for fresh
  credentials; 400/422 are PermanentErrors carrying the server's message. 404 on delete is success.
  The client's own urllib3 retries are switched off: retrying is the tasks' job (tasks/_policy.py);
- server-side apply with field manager ``dynadeploy`` through the dynamic client (any kind, CRDs too);
- get / list by label (paged), served-kind checks, delete with a propagation policy and wait-gone;
- ``wait``: an informer-style wait (list, then watch from that resourceVersion with a timeout) that
  re-evaluates a predicate on every change and on every tick; any watch failure falls back to polling;
- SelfSubjectAccessReview, pod logs, events for an object;
- Secrets from values (``ensure_secret``): compared before written, never logged, never put in an
  error message (errors about a Secret carry only its name and the HTTP status).

Error translation lives in runtime/gateways/kube_errors.py, waiting (``Kube.wait``) in
runtime/gateways/kube_wait.py; both are re-exported here.

Waiting is observation, not retrying: ``wait`` keeps reading through transient errors until its
deadline (a blip in a watch must not fail a 10-minute rollout), while writes surface them at once.
"""

from __future__ import annotations

import atexit
import base64
import builtins  # inside Kube, `list` names the method: annotations after it say builtins.list
import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from runtime.errors import PermanentError, WaitTimeout
from runtime.gateways.kube_errors import _is_api_exception, _not_found, describe, plural_of, translate
from runtime.gateways.kube_wait import Watching, selector

__all__ = [
    "FIELD_MANAGER",
    "Kube",
    "WaitTimeout",
    "covered",
    "default_kubeconfig",
    "describe",
    "plural_of",
    "selector",
    "strip_server_fields",
    "translate",
]

T = TypeVar("T")
FIELD_MANAGER = "dynadeploy"
log = logging.getLogger("dynadeploy.kube")

_CACHE_DIR: str | None = None
_CACHE_LOCK = threading.Lock()


def strip_server_fields(obj: Mapping[str, Any]) -> dict:
    """``obj`` without what the server owns (status, uid, resourceVersion, managedFields...)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k
        not in (
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        )
    }
    out["metadata"] = meta
    return out


# ----------------------------------------------------------------------------------------- gateway


def default_kubeconfig() -> str:
    first = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
    return first or str(Path.home() / ".kube" / "config")


def covered(live: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    """True when the live object already carries everything ``want`` sets (its spec, and our labels and
    annotations): applying ``want`` again would change nothing that dynadeploy owns."""
    lm, wm = live.get("metadata") or {}, want.get("metadata") or {}
    for part in ("labels", "annotations"):
        have = lm.get(part) or {}
        if any(have.get(k) != v for k, v in (wm.get(part) or {}).items()):
            return False
    return _covers(live.get("spec"), want.get("spec"))


def _covers(have: Any, want: Any) -> bool:
    """``have`` holds every field of ``want`` with the same value (lists compared item by item)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_covers(have.get(k), v) for k, v in want.items())
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(have) == len(want)
            and all(_covers(h, w) for h, w in zip(have, want, strict=True))
        )
    return have == want


class Kube(Watching):
    """Blocking Kubernetes operations against one cluster (kubeconfig + context)."""

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        *,
        field_manager: str = FIELD_MANAGER,
        request_timeout_s: float = 30.0,
        api_client: Any = None,
    ) -> None:
        self.kubeconfig = kubeconfig or default_kubeconfig()
        self.context = context
        self.field_manager = field_manager
        self.request_timeout_s = request_timeout_s
        self._api = api_client
        self._dyn: Any = None
        self._cache_file: str | None = None

    # -- client ------------------------------------------------------------------------------
    @property
    def api(self) -> Any:
        """The kubernetes ApiClient (built on first use, no urllib3 retries)."""
        if self._api is None:
            from kubernetes import client, config
            from kubernetes.config.config_exception import ConfigException

            cfg = client.Configuration()
            if not Path(self.kubeconfig).is_file():
                raise PermanentError(
                    f"kubeconfig {self.kubeconfig} does not exist",
                    hint="set target.kubeconfig or $KUBECONFIG to the cluster's kubeconfig",
                )
            try:
                config.load_kube_config(
                    config_file=self.kubeconfig, context=self.context, client_configuration=cfg
                )
            except (ConfigException, ValueError, KeyError, TypeError) as exc:
                raise PermanentError(
                    f"cannot load kubeconfig {self.kubeconfig}"
                    + (f" (context {self.context})" if self.context else "")
                    + f": {exc}",
                    hint="check target.kubeconfig and target.context (kubectl config get-contexts)",
                ) from None
            cfg.retries = False  # retries belong to the tasks' policy, on TransientError only
            self._api = client.ApiClient(cfg)
        return self._api

    @property
    def server(self) -> str:
        return self.api.configuration.host

    @property
    def dynamic(self) -> Any:
        if self._dyn is None:
            from kubernetes.dynamic import DynamicClient

            global _CACHE_DIR
            api = self.api
            with _CACHE_LOCK:
                if _CACHE_DIR is None:
                    _CACHE_DIR = tempfile.mkdtemp(prefix="dynadeploy-discovery-")
                    atexit.register(shutil.rmtree, _CACHE_DIR, True)
                # A discovery cache per API server in this process's own folder (the client's default
                # file is shared by every process on the machine that talks to the same URL). Kinds that
                # appear later (CRDs) are found by the client's refresh on a miss.
                digest = hashlib.sha256(api.configuration.host.encode()).hexdigest()[:16]
                self._cache_file = os.path.join(_CACHE_DIR, f"{digest}.json")
                try:
                    self._dyn = DynamicClient(api, cache_file=self._cache_file)
                except Exception as exc:  # discovery failed: translate
                    raise translate(
                        exc, verb="discover", what="the API groups", context=self.context
                    ) from exc
        return self._dyn

    def close(self) -> None:
        if self._api is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                self._api.close()

    def _resource(self, api_version: str, kind: str) -> Any | None:
        """The dynamic client's resource for a kind, or None when the server does not serve it."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            return None
        except ResourceNotUniqueError:
            return self.dynamic.resources.get(api_version=api_version, kind=kind, singular_name=kind.lower())
        except Exception as exc:
            raise translate(exc, verb="discover", what=f"{api_version} {kind}", context=self.context) from exc

    def _need(self, api_version: str, kind: str) -> Any:
        res = self._resource(api_version, kind)
        if res is None:
            raise PermanentError(
                f"the cluster does not serve {api_version} {kind}",
                hint="install the CRD that defines it (the Dynamo platform chart for nvidia.com kinds)",
            )
        return res

    def _timeouts(self, read_s: float | None = None) -> tuple[float, float]:
        """(connect, read) seconds for one request. A pair, because the client reads a single number as
        a total only when it is an int (a float is silently ignored: no timeout at all)."""
        return (10.0, float(read_s if read_s is not None else self.request_timeout_s))

    def _call(
        self,
        fn: Callable[[], T],
        *,
        verb: str,
        what: str,
        resource: str = "",
        namespace: str | None = None,
        secret: bool = False,
    ) -> T:
        try:
            return fn()
        except Exception as exc:
            raise translate(
                exc,
                verb=verb,
                what=what,
                resource=resource,
                namespace=namespace,
                context=self.context,
                secret=secret,
            ) from None

    def served(self, api_version: str, kind: str) -> bool:
        return self._resource(api_version, kind) is not None

    # -- reads -------------------------------------------------------------------------------
    def version(self) -> dict:
        """The server's /version (major, minor, gitVersion...)."""
        from kubernetes import client

        info = self._call(
            lambda: client.VersionApi(self.api).get_code(_request_timeout=self._timeouts()),
            verb="get",
            what="the server version",
        )
        return {
            "major": info.major,
            "minor": info.minor,
            "gitVersion": info.git_version,
            "platform": info.platform,
        }

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        """The object as a dict, or None when it (or its kind) does not exist."""
        res = self._resource(api_version, kind)
        if res is None:
            return None
        try:
            obj = res.get(
                name=name, namespace=namespace if res.namespaced else None, _request_timeout=self._timeouts()
            )
        except Exception as exc:
            if _not_found(exc):
                return None
            raise translate(
                exc,
                verb="get",
                what=describe(api_version, kind, name, namespace),
                resource=plural_of(res),
                namespace=namespace,
                context=self.context,
                secret=kind == "Secret",
            ) from None
        return obj.to_dict()

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str | None] | str | None = None,
        fields: str | None = None,
        page: int = 500,
    ) -> list[dict]:
        """Every object of a kind (in ``namespace``, or all namespaces), by label/field selector; []
        when the kind is not served."""
        res = self._resource(api_version, kind)
        if res is None:
            return []
        return self._list(res, namespace, selector(labels), fields, page)[0]

    def _list(
        self, res: Any, namespace: str | None, labels: str | None, fields: str | None, page: int = 500
    ) -> tuple[builtins.list[dict], str]:
        items: list[dict] = []
        token: str | None = None
        rv = ""
        while True:
            try:
                out = res.get(
                    namespace=namespace if res.namespaced else None,
                    label_selector=labels,
                    field_selector=fields,
                    limit=page,
                    _continue=token,
                    _request_timeout=self._timeouts(),
                ).to_dict()
            except Exception as exc:
                if _not_found(exc):  # the kind went away since discovery
                    return [], ""
                raise translate(
                    exc,
                    verb="list",
                    what=f"{res.kind} objects",
                    resource=plural_of(res),
                    namespace=namespace,
                    context=self.context,
                ) from None
            kind = res.kind
            for item in out.get("items") or []:
                item.setdefault("apiVersion", res.group_version)
                item.setdefault("kind", kind)
                items.append(item)
            meta = out.get("metadata") or {}
            rv = meta.get("resourceVersion") or rv
            token = meta.get("continue")
            if not token:
                return items, rv

    def can_i(
        self,
        verb: str,
        resource: str,
        *,
        group: str = "",
        namespace: str | None = None,
        subresource: str | None = None,
        name: str | None = None,
    ) -> bool:
        """SelfSubjectAccessReview: may this run's identity ``verb`` ``resource``?"""
        attrs = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attrs["namespace"] = namespace
        if subresource:
            attrs["subresource"] = subresource
        if name:
            attrs["name"] = name
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }
        res = self._need("authorization.k8s.io/v1", "SelfSubjectAccessReview")
        out = self._call(
            lambda: res.create(body=body, _request_timeout=self._timeouts()).to_dict(),
            verb="create",
            what="a SelfSubjectAccessReview",
            resource="selfsubjectaccessreviews.authorization.k8s.io",
        )
        return bool((out.get("status") or {}).get("allowed"))

    def pod_logs(
        self, name: str, namespace: str, *, container: str | None = None, tail_lines: int = 60
    ) -> str:
        """The tail of a pod's log ('' when the pod or its log is gone)."""
        from kubernetes import client

        core = client.CoreV1Api(self.api)
        try:
            return (
                core.read_namespaced_pod_log(
                    name,
                    namespace,
                    container=container,
                    tail_lines=tail_lines,
                    _request_timeout=self._timeouts(),
                )
                or ""
            )
        except Exception as exc:
            if _not_found(exc) or (_is_api_exception(exc) and getattr(exc, "status", 0) == 400):
                return ""
            raise translate(
                exc,
                verb="get",
                what=f"the log of pod {namespace}/{name}",
                resource="pods/log",
                namespace=namespace,
                context=self.context,
            ) from None

    def events_for(self, obj: Mapping[str, Any]) -> builtins.list[dict]:
        """core/v1 Events about ``obj`` (matched by uid, else kind + name), oldest first."""
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        uid, name, kind = meta.get("uid"), meta.get("name"), obj.get("kind")
        out = []
        for ev in self.list("v1", "Event", ns):
            about = ev.get("involvedObject") or {}
            if (uid and about.get("uid") == uid) or (about.get("name") == name and about.get("kind") == kind):
                out.append(ev)
        return sorted(out, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))

    def events_in(self, namespace: str) -> builtins.list[dict]:
        return self.list("v1", "Event", namespace)

    # -- writes ------------------------------------------------------------------------------
    def apply(self, obj: Mapping[str, Any], *, force: bool = False, secret: bool = False) -> dict:
        """Server-side apply ``obj`` with this gateway's field manager; returns the live object.

        ``force`` takes over fields another manager owns (a 409 conflict otherwise, a TransientError).
        """
        api_version, kind = obj["apiVersion"], obj["kind"]
        meta = obj.get("metadata") or {}
        name, ns = meta.get("name"), meta.get("namespace")
        res = self._need(api_version, kind)
        body = dict(obj)
        if res.namespaced and not ns:
            raise PermanentError(
                f"{kind} {name} has no namespace", hint="set metadata.namespace in the manifest"
            )
        what = describe(api_version, kind, name, ns if res.namespaced else None)
        out = self._call(
            lambda: res.server_side_apply(
                body=body,
                name=name,
                namespace=ns if res.namespaced else None,
                field_manager=self.field_manager,
                force_conflicts=force or None,
                _request_timeout=self._timeouts(),
            ),
            verb="patch",
            what=what,
            resource=plural_of(res),
            namespace=ns,
            secret=secret or kind == "Secret",
        )
        return out.to_dict() if hasattr(out, "to_dict") else dict(out)

    def apply_all(self, objs: Iterable[Mapping[str, Any]], *, force: bool = False) -> builtins.list[dict]:
        return [self.apply(o, force=force) for o in objs]

    def create_if_missing(self, obj: Mapping[str, Any]) -> tuple[dict, bool]:
        """Create ``obj`` unless an object of that name exists (then leave it alone); (object, created)."""
        meta = obj.get("metadata") or {}
        live = self.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if live is not None:
            return live, False
        return self.apply(obj), True

    def patch_merge(
        self,
        api_version: str,
        kind: str,
        name: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
        *,
        field_manager: str | None = None,
    ) -> dict:
        """A JSON merge patch (e.g. an annotation kept apart from the applied configuration: give it its
        own ``field_manager`` so a later apply of the object does not remove it)."""
        res = self._need(api_version, kind)
        out = self._call(
            lambda: res.patch(
                body=dict(body),
                name=name,
                namespace=namespace if res.namespaced else None,
                content_type="application/merge-patch+json",
                field_manager=field_manager or self.field_manager,
                _request_timeout=self._timeouts(),
            ),
            verb="patch",
            what=describe(api_version, kind, name, namespace),
            resource=plural_of(res),
            namespace=namespace,
        )
        return out.to_dict()

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        propagation: str = "Background",
        wait: bool = False,
        timeout_s: float = 120.0,
    ) -> bool:
        """Delete an object; False when it (or its kind) did not exist (not an error). ``wait``: until gone."""
        res = self._resource(api_version, kind)
        if res is None:
            return False
        ns = namespace if res.namespaced else None
        what = describe(api_version, kind, name, ns)
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        try:
            res.delete(name=name, namespace=ns, body=body, _request_timeout=self._timeouts())
        except Exception as exc:
            if _not_found(exc):
                return False
            raise translate(
                exc,
                verb="delete",
                what=what,
                resource=plural_of(res),
                namespace=ns,
                context=self.context,
                secret=kind == "Secret",
            ) from None
        if wait:
            self.wait_gone(api_version, kind, name, ns, timeout_s=timeout_s)
        return True

    def wait_gone(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        timeout_s: float = 120.0,
    ) -> None:
        self.wait(
            api_version,
            kind,
            lambda objs: not objs or None,
            name=name,
            namespace=namespace,
            timeout_s=timeout_s,
            what=f"{describe(api_version, kind, name, namespace)} to be deleted",
        )

    def ensure_secret(
        self,
        name: str,
        namespace: str,
        data: Mapping[str, str],
        *,
        labels: Mapping[str, str] | None = None,
        type_: str = "Opaque",
    ) -> bool:
        """Create or update an Opaque Secret from plain values; True when something was written.

        The values are compared with the live Secret first, so an unchanged token writes nothing.
        Nothing about the values is logged or put in an error message.
        """
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        live = self.get("v1", "Secret", name, namespace)
        want_labels = dict(labels or {})
        if (
            live is not None
            and (live.get("data") or {}) == encoded
            and all(
                ((live.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in want_labels.items()
            )
        ):
            return False
        obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": type_,
            "metadata": {"name": name, "namespace": namespace, "labels": want_labels},
            "data": encoded,
        }
        self.apply(obj, force=True, secret=True)
        log.info("Secret %s/%s written (%d key(s); values not shown)", namespace, name, len(encoded))
        return True
