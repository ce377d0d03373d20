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

Waiting is observation, not retrying: ``wait`` keeps reading through transient errors until its
deadline (a blip in a watch must not fail a 10-minute rollout), while writes surface them at once.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from runtime.errors import DynadeployError, PermanentError, TransientError

T = TypeVar("T")
FIELD_MANAGER = "dynadeploy"
log = logging.getLogger("dynadeploy.kube")

_CACHE_DIR: str | None = None
_CACHE_LOCK = threading.Lock()


class WaitTimeout(PermanentError):
    """``Kube.wait`` ran out of time; ``last`` is the last state the predicate saw (a list of objects)."""

    def __init__(self, message: str, *, last: Any = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.last = last


# ------------------------------------------------------------------------------------------ errors


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body.strip().startswith("{"):
        try:
            return str(json.loads(body).get("message") or "").strip()
        except ValueError:
            pass
    return str(getattr(exc, "reason", "") or "").strip()


def _retry_after(exc: Any) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
    except AttributeError:
        return None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _is_api_exception(exc: BaseException) -> bool:
    return type(exc).__name__ in ("ApiException", "DynamicApiError") or hasattr(exc, "status") and hasattr(
        exc, "reason") and hasattr(exc, "body")


def translate(exc: BaseException, *, verb: str, what: str, resource: str = "", namespace: str | None = None,
              context: str | None = None, secret: bool = False) -> DynadeployError:
    """The project's error for a failed API call ``verb`` on ``what`` (e.g. "Deployment ns/name").

    ``resource`` is the plural (with group) named in an RBAC hint; ``secret`` keeps the server's
    message out of the error (it could quote what was sent).
    """
    if isinstance(exc, DynadeployError):
        return exc
    where = f" in namespace {namespace}" if namespace else ""
    if _is_api_exception(exc):
        status = int(getattr(exc, "status", 0) or 0)
        detail = "" if secret else _status_message(exc)
        message = f"{verb} {what} failed: HTTP {status}" + (f": {detail}" if detail else "")
        if status == 403:
            ctx = f" (kubeconfig context {context})" if context else ""
            scope = f"-n {namespace}" if namespace else "(cluster-wide)"
            return PermanentError(message, hint=(
                f"the identity of this run{ctx} may not {verb} {resource or what}{where}; grant it with a "
                f"Role/ClusterRole binding (check: kubectl auth can-i {verb} {resource or what} {scope})"))
        if status == 401:
            return PermanentError(message, hint="the kubeconfig's credentials were refused; refresh them "
                                                "(e.g. re-run the cloud's get-credentials command)")
        if status in (409, 410, 429) or status >= 500 or status == 0:
            return TransientError(message, retry_after=_retry_after(exc),
                                  hint="the Kubernetes API was busy, changing or unavailable; retry")
        if status == 404:
            return PermanentError(message, hint=f"{what} does not exist{where}")
        return PermanentError(message, hint="the API server refused the request as sent; fix the manifest "
                                            "or the spec field it came from")
    name = type(exc).__name__
    if name in ("MaxRetryError", "NewConnectionError", "ProtocolError", "ReadTimeoutError",
                "ConnectTimeoutError", "ConnectionError", "RemoteDisconnected", "SSLError",
                "IncompleteRead") or isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        reason = str(getattr(exc, "reason", "") or exc).splitlines()[0][:300] if not secret else name
        return TransientError(f"{verb} {what} failed: cannot reach the Kubernetes API ({reason})",
                              hint="check that the cluster is up and reachable from this worker; retry")
    return PermanentError(f"{verb} {what} failed: {name}" + ("" if secret else f": {exc}"))


def _not_found(exc: BaseException) -> bool:
    return _is_api_exception(exc) and int(getattr(exc, "status", 0) or 0) == 404


def plural_of(resource: Any) -> str:
    group = getattr(resource, "group", "") or ""
    return f"{resource.name}.{group}" if group else resource.name


def describe(api_version: str, kind: str, name: str | None = None, namespace: str | None = None) -> str:
    where = f"{namespace}/{name}" if namespace and name else (name or (f"in {namespace}" if namespace else ""))
    return f"{kind} {where}".strip()


def selector(labels: Mapping[str, str] | str | None) -> str | None:
    if labels is None or isinstance(labels, str):
        return labels or None
    return ",".join(f"{k}={v}" if v is not None else k for k, v in labels.items()) or None


def strip_server_fields(obj: Mapping[str, Any]) -> dict:
    """``obj`` without what the server owns (status, uid, resourceVersion, managedFields...)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items()
            if k not in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                         "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")}
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
        return isinstance(have, list) and len(have) == len(want) and all(_covers(h, w) for h, w in zip(have, want))
    return have == want


class Kube:
    """Blocking Kubernetes operations against one cluster (kubeconfig + context)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, *,
                 field_manager: str = FIELD_MANAGER, request_timeout_s: float = 30.0,
                 api_client: Any = None) -> None:
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
                raise PermanentError(f"kubeconfig {self.kubeconfig} does not exist",
                                     hint="set target.kubeconfig or $KUBECONFIG to the cluster's kubeconfig")
            try:
                config.load_kube_config(config_file=self.kubeconfig, context=self.context,
                                        client_configuration=cfg)
            except (ConfigException, ValueError, KeyError, TypeError) as exc:
                raise PermanentError(
                    f"cannot load kubeconfig {self.kubeconfig}"
                    + (f" (context {self.context})" if self.context else "") + f": {exc}",
                    hint="check target.kubeconfig and target.context (kubectl config get-contexts)") from None
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
                    raise translate(exc, verb="discover", what="the API groups", context=self.context) from exc
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
            raise PermanentError(f"the cluster does not serve {api_version} {kind}",
                                 hint="install the CRD that defines it (the Dynamo platform chart for nvidia.com "
                                      "kinds)")
        return res

    def _timeouts(self, read_s: float | None = None) -> tuple[float, float]:
        """(connect, read) seconds for one request. A pair, because the client reads a single number as
        a total only when it is an int (a float is silently ignored: no timeout at all)."""
        return (10.0, float(read_s if read_s is not None else self.request_timeout_s))

    def _call(self, fn: Callable[[], T], *, verb: str, what: str, resource: str = "",
              namespace: str | None = None, secret: bool = False) -> T:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - every SDK/transport error is translated here
            raise translate(exc, verb=verb, what=what, resource=resource, namespace=namespace,
                            context=self.context, secret=secret) from None

    def served(self, api_version: str, kind: str) -> bool:
        return self._resource(api_version, kind) is not None

    # -- reads -------------------------------------------------------------------------------
    def version(self) -> dict:
        """The server's /version (major, minor, gitVersion...)."""
        from kubernetes import client

        info = self._call(lambda: client.VersionApi(self.api).get_code(_request_timeout=self._timeouts()),
                          verb="get", what="the server version")
        return {"major": info.major, "minor": info.minor, "gitVersion": info.git_version,
                "platform": info.platform}

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        """The object as a dict, or None when it (or its kind) does not exist."""
        res = self._resource(api_version, kind)
        if res is None:
            return None
        try:
            obj = res.get(name=name, namespace=namespace if res.namespaced else None,
                          _request_timeout=self._timeouts())
        except Exception as exc:  # noqa: BLE001
            if _not_found(exc):
                return None
            raise translate(exc, verb="get", what=describe(api_version, kind, name, namespace),
                            resource=plural_of(res), namespace=namespace, context=self.context,
                            secret=kind == "Secret") from None
        return obj.to_dict()

    def list(self, api_version: str, kind: str, namespace: str | None = None, *,
             labels: Mapping[str, str | None] | str | None = None, fields: str | None = None,
             page: int = 500) -> list[dict]:
        """Every object of a kind (in ``namespace``, or all namespaces), by label/field selector; []
        when the kind is not served."""
        res = self._resource(api_version, kind)
        if res is None:
            return []
        return self._list(res, namespace, selector(labels), fields, page)[0]

    def _list(self, res: Any, namespace: str | None, labels: str | None, fields: str | None,
              page: int = 500) -> tuple[list[dict], str]:
        items: list[dict] = []
        token: str | None = None
        rv = ""
        while True:
            try:
                out = res.get(namespace=namespace if res.namespaced else None, label_selector=labels,
                              field_selector=fields, limit=page, _continue=token,
                              _request_timeout=self._timeouts()).to_dict()
            except Exception as exc:  # noqa: BLE001
                if _not_found(exc):  # the kind went away since discovery
                    return [], ""
                raise translate(exc, verb="list", what=f"{res.kind} objects", resource=plural_of(res),
                                namespace=namespace, context=self.context) from None
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

    def can_i(self, verb: str, resource: str, *, group: str = "", namespace: str | None = None,
              subresource: str | None = None, name: str | None = None) -> bool:
        """SelfSubjectAccessReview: may this run's identity ``verb`` ``resource``?"""
        attrs = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attrs["namespace"] = namespace
        if subresource:
            attrs["subresource"] = subresource
        if name:
            attrs["name"] = name
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs}}
        res = self._need("authorization.k8s.io/v1", "SelfSubjectAccessReview")
        out = self._call(lambda: res.create(body=body, _request_timeout=self._timeouts()).to_dict(),
                         verb="create", what="a SelfSubjectAccessReview",
                         resource="selfsubjectaccessreviews.authorization.k8s.io")
        return bool((out.get("status") or {}).get("allowed"))

    def pod_logs(self, name: str, namespace: str, *, container: str | None = None, tail_lines: int = 60) -> str:
        """The tail of a pod's log ('' when the pod or its log is gone)."""
        from kubernetes import client

        core = client.CoreV1Api(self.api)
        try:
            return core.read_namespaced_pod_log(name, namespace, container=container, tail_lines=tail_lines,
                                                _request_timeout=self._timeouts()) or ""
        except Exception as exc:  # noqa: BLE001
            if _not_found(exc) or (_is_api_exception(exc) and getattr(exc, "status", 0) == 400):
                return ""
            raise translate(exc, verb="get", what=f"the log of pod {namespace}/{name}", resource="pods/log",
                            namespace=namespace, context=self.context) from None

    def events_for(self, obj: Mapping[str, Any]) -> list[dict]:
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

    def events_in(self, namespace: str) -> list[dict]:
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
            raise PermanentError(f"{kind} {name} has no namespace", hint="set metadata.namespace in the manifest")
        what = describe(api_version, kind, name, ns if res.namespaced else None)
        out = self._call(lambda: res.server_side_apply(
            body=body, name=name, namespace=ns if res.namespaced else None, field_manager=self.field_manager,
            force_conflicts=force or None, _request_timeout=self._timeouts()),
            verb="patch", what=what, resource=plural_of(res), namespace=ns, secret=secret or kind == "Secret")
        return out.to_dict() if hasattr(out, "to_dict") else dict(out)

    def apply_all(self, objs: Iterable[Mapping[str, Any]], *, force: bool = False) -> list[dict]:
        return [self.apply(o, force=force) for o in objs]

    def create_if_missing(self, obj: Mapping[str, Any]) -> tuple[dict, bool]:
        """Create ``obj`` unless an object of that name exists (then leave it alone); (object, created)."""
        meta = obj.get("metadata") or {}
        live = self.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if live is not None:
            return live, False
        return self.apply(obj), True

    def patch_merge(self, api_version: str, kind: str, name: str, body: Mapping[str, Any],
                    namespace: str | None = None, *, field_manager: str | None = None) -> dict:
        """A JSON merge patch (e.g. an annotation kept apart from the applied configuration: give it its
        own ``field_manager`` so a later apply of the object does not remove it)."""
        res = self._need(api_version, kind)
        out = self._call(lambda: res.patch(body=dict(body), name=name, namespace=namespace if res.namespaced else None,
                                           content_type="application/merge-patch+json",
                                           field_manager=field_manager or self.field_manager,
                                           _request_timeout=self._timeouts()),
                         verb="patch", what=describe(api_version, kind, name, namespace), resource=plural_of(res),
                         namespace=namespace)
        return out.to_dict()

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None, *,
               propagation: str = "Background", wait: bool = False, timeout_s: float = 120.0) -> bool:
        """Delete an object; False when it (or its kind) did not exist (not an error). ``wait``: until gone."""
        res = self._resource(api_version, kind)
        if res is None:
            return False
        ns = namespace if res.namespaced else None
        what = describe(api_version, kind, name, ns)
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        try:
            res.delete(name=name, namespace=ns, body=body, _request_timeout=self._timeouts())
        except Exception as exc:  # noqa: BLE001
            if _not_found(exc):
                return False
            raise translate(exc, verb="delete", what=what, resource=plural_of(res), namespace=ns,
                            context=self.context, secret=kind == "Secret") from None
        if wait:
            self.wait_gone(api_version, kind, name, ns, timeout_s=timeout_s)
        return True

    def wait_gone(self, api_version: str, kind: str, name: str, namespace: str | None = None, *,
                  timeout_s: float = 120.0) -> None:
        self.wait(api_version, kind, lambda objs: not objs or None, name=name, namespace=namespace,
                  timeout_s=timeout_s, what=f"{describe(api_version, kind, name, namespace)} to be deleted")

    def ensure_secret(self, name: str, namespace: str, data: Mapping[str, str], *,
                      labels: Mapping[str, str] | None = None, type_: str = "Opaque") -> bool:
        """Create or update an Opaque Secret from plain values; True when something was written.

        The values are compared with the live Secret first, so an unchanged token writes nothing.
        Nothing about the values is logged or put in an error message.
        """
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        live = self.get("v1", "Secret", name, namespace)
        want_labels = dict(labels or {})
        if live is not None and (live.get("data") or {}) == encoded and all(
                ((live.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in want_labels.items()):
            return False
        obj = {"apiVersion": "v1", "kind": "Secret", "type": type_,
               "metadata": {"name": name, "namespace": namespace, "labels": want_labels},
               "data": encoded}
        self.apply(obj, force=True, secret=True)
        log.info("Secret %s/%s written (%d key(s); values not shown)", namespace, name, len(encoded))
        return True

    # -- waiting -----------------------------------------------------------------------------
    def wait(self, api_version: str, kind: str, predicate: Callable[[list[dict]], T | None], *,
             name: str | None = None, namespace: str | None = None, labels: Mapping[str, str] | str | None = None,
             timeout_s: float = 300.0, tick_s: float = 2.0, what: str | None = None,
             describe_stuck: Callable[[list[dict]], str] | None = None) -> T:
        """Wait until ``predicate(objects)`` returns something truthy, and return that.

        ``objects`` are the current objects of the kind matching name/namespace/labels (kept up to date
        by a watch; re-listed after a watch error, and polled every ``tick_s`` when watching fails).
        The predicate also runs every ``tick_s`` without events, so it may read other state. On
        timeout: ``WaitTimeout`` with ``describe_stuck(objects)`` in its message.
        """
        what = what or f"{describe(api_version, kind, name, namespace)} to be ready"
        deadline = time.monotonic() + timeout_s
        fields = f"metadata.name={name}" if name else None
        sel = selector(labels)
        cache: dict[tuple[str, str], dict] = {}
        rv = ""
        watching = True
        last_error: DynadeployError | None = None
        failures = 0

        def objects() -> list[dict]:
            return list(cache.values())

        def key(obj: Mapping[str, Any]) -> tuple[str, str]:
            m = obj.get("metadata") or {}
            return (m.get("namespace") or "", m.get("name") or "")

        relist = True
        while True:
            res = self._resource(api_version, kind)
            if relist or res is None:
                try:
                    items, rv = self._list(res, namespace, sel, fields) if res is not None else ([], "")
                    cache = {key(o): o for o in items}
                    relist = False
                    last_error = None
                except TransientError as exc:
                    last_error = exc
            if last_error is None:
                result = predicate(objects())
                if result:
                    return result
            left = deadline - time.monotonic()
            if left <= 0:
                stuck = describe_stuck(objects()) if describe_stuck else ""
                err = f"; last error: {last_error}" if last_error else ""
                raise WaitTimeout(f"timed out after {timeout_s:.0f}s waiting for {what}"
                                  + (f": {stuck}" if stuck else "") + err, last=objects())
            step = min(left, tick_s)
            if res is None or not watching or last_error is not None:
                time.sleep(min(step, 0.5) if res is not None else step)
                relist = True
                continue
            try:
                for ev in self._watch(res, namespace, sel, fields, rv, step):
                    etype, obj = ev["type"], ev["raw_object"]
                    if etype == "BOOKMARK":
                        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                        if time.monotonic() >= deadline:
                            break
                        continue
                    if etype == "ERROR":
                        relist = True
                        break
                    obj.setdefault("apiVersion", res.group_version)
                    obj.setdefault("kind", res.kind)
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if etype == "DELETED":
                        cache.pop(key(obj), None)
                    else:
                        cache[key(obj)] = obj
                    result = predicate(objects())
                    if result:
                        return result
                    if time.monotonic() >= deadline:
                        break
                failures = 0
            except DynadeployError:
                raise  # the predicate's own verdict (a failed rollout, a refused route), not a broken watch
            except Exception as exc:  # noqa: BLE001 - a broken watch: relist, then poll if it keeps failing
                failures += 1
                relist = True
                if failures >= 3:
                    watching = False
                log.debug("watch of %s failed (%s); relisting", kind, type(exc).__name__)

    def _watch(self, res: Any, namespace: str | None, labels: str | None, fields: str | None, rv: str,
               seconds: float):
        from kubernetes import watch

        w = watch.Watch()
        timeout = max(1, int(seconds + 0.999))
        try:
            yield from w.stream(res.get, namespace=namespace if res.namespaced else None, label_selector=labels,
                                field_selector=fields, resource_version=rv or None, serialize=False,
                                timeout_seconds=timeout, _request_timeout=self._timeouts(timeout + 5))
        finally:
            w.stop()


def poll(check: Callable[[], T | None], *, timeout_s: float, interval_s: float = 0.5,
         what: str = "a condition", describe_stuck: Callable[[], str] | None = None) -> T:
    """Call ``check`` until it returns something truthy (transient read errors are waited through)."""
    deadline = time.monotonic() + timeout_s
    last: DynadeployError | None = None
    while True:
        try:
            out = check()
            last = None
            if out:
                return out
        except TransientError as exc:
            last = exc
        if time.monotonic() >= deadline:
            stuck = describe_stuck() if describe_stuck else ""
            err = f"; last error: {last}" if last else ""
            raise WaitTimeout(f"timed out after {timeout_s:.0f}s waiting for {what}"
                              + (f": {stuck}" if stuck else "") + err)
        time.sleep(interval_s)
