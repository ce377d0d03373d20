"""Synchronous Helm gateway over pyhelm3, with the project's workarounds and error translation.

Why: tasks are synchronous Prefect tasks, pyhelm3 is asyncio-only, and its raw exceptions carry
helm's stderr (which can echo values). This module is the only place that talks to helm:

- each public call runs its coroutine with ``asyncio.run``, or in a worker thread when the caller is
  already inside a running loop (async Prefect tasks/flows), so it is safe from either world;
- helm is always the pinned binary from :func:`runtime.gateways.toolchain.binary` (``DYNADEPLOY_HELM_MAJOR=3``
  selects Helm 3), never whatever is on PATH;
- pyhelm3 0.5.8 bug: ``disable_validation=True`` does ``argv.extend("--disable-openapi-validation")``,
  adding the flag one character at a time. :func:`fixed_command_class` re-joins it in ``run``; it is
  passed as ``Client(FixedCommand(...), executable=...)``;
- namespaces are created by the project (labels, policies), so installs default to
  ``create_namespace=False`` (helm validates a created Namespace against OpenAPI even when
  validation is disabled);
- failures become :mod:`runtime.errors`: a release locked by an unfinished operation, connection
  errors, timeouts, 429 and 5xx are TransientError; bad charts, values and templates are ToolError
  (a PermanentError) carrying helm's trimmed stderr with anything token-like redacted.

Stuck releases: a worker killed mid-upgrade leaves the release ``pending-*`` and every later
install fails with "another operation is in progress". :meth:`Helm.recover_pending` rolls it back to
the last deployed revision (or uninstalls a pending-install that never deployed). It is not run
implicitly, because a pending state may belong to an operation that is still running; call it (or
``ensure(..., recover=True)``) once the target's run lock says nobody else is working on it.
"""

from __future__ import annotations

import asyncio
import logging
import tarfile
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypedDict

from runtime.errors import ToolError, TransientError
from runtime.gateways.helm_errors import redact, secret_leaves, translate_error, trim_stderr
from runtime.gateways.helm_support import (
    DISABLE_VALIDATION_FLAG,
    PENDING_STATUSES,
    ReleaseInfo,
    T,
    _chart_ref,
    _plain,
    fixed_command_class,
    parse_time,
    rejoin_flags,
    run_sync,
    split_chart,
)
from runtime.gateways.toolchain import binary

logging.getLogger("pyhelm3").addHandler(logging.NullHandler())  # failures surface as our errors instead
_DEPLOYED_ONCE = frozenset({"deployed", "superseded"})


class _InstallOptions(TypedDict):
    """The keyword options ``install_or_upgrade`` and ``ensure`` pass on to ``Helm._a_install``."""

    wait: bool
    atomic: bool
    timeout_s: int | None
    version: str | None
    skip_crds: bool
    repo: str | None
    create_namespace: bool
    description: str | None


__all__ = [
    "DISABLE_VALIDATION_FLAG",
    "PENDING_STATUSES",
    "Helm",
    "ReleaseInfo",
    "fixed_command_class",
    "parse_time",
    "redact",
    "rejoin_flags",
    "run_sync",
    "secret_leaves",
    "split_chart",
    "translate_error",
    "trim_stderr",
]


# ------------------------------------------------------------------------------------------ facade


class Helm:
    """Blocking helm operations against one cluster (kubeconfig + context)."""

    def __init__(
        self,
        kubeconfig: str | None,
        context: str | None = None,
        *,
        timeout_s: int = 600,
        disable_validation: bool = False,
        major: int | None = None,
        executable: str | None = None,
        history_max: int = 10,
    ) -> None:
        self.executable = executable or binary("helm", major=major)
        self.kubeconfig, self.context = kubeconfig, context
        self.timeout_s, self.disable_validation, self.history_max = timeout_s, disable_validation, history_max
        self.watchdog_margin_s = 60.0  # the Python-side limit is timeout_s + this
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The pyhelm3 Client (built on first use: it runs ``helm version``)."""
        if self._client is None:
            from pyhelm3 import Client

            command = fixed_command_class()(
                default_timeout=f"{self.timeout_s}s",
                executable=self.executable,
                history_max_revisions=self.history_max,
                kubecontext=self.context,
                kubeconfig=Path(self.kubeconfig) if self.kubeconfig else None,
            )
            try:
                self._client = Client(command, executable=self.executable)
            except Exception as exc:  # AssertionError (no binary), CalledProcessError, ValueError
                raise ToolError(f"cannot run {self.executable} version: {exc}") from exc
        return self._client

    @property
    def major(self) -> int:
        return int(self.client.version.major)

    def _call(
        self,
        op: str,
        factory: Callable[[], Coroutine[Any, Any, T]],
        *,
        release: str | None = None,
        namespace: str | None = None,
        values: dict | None = None,
        timeout_s: int | None = None,
    ) -> T:
        from pydantic import ValidationError
        from pyhelm3 import errors

        limit = (timeout_s or self.timeout_s) + self.watchdog_margin_s

        async def guarded() -> T:
            try:
                return await asyncio.wait_for(factory(), limit)
            except TimeoutError:
                what = f"helm {op}" + (f" {release}" if release else "")
                raise TransientError(
                    f"{what} did not finish within {limit}s",
                    hint="the API server is slow or unreachable; retry",
                ) from None

        self.client  # noqa: B018 - build outside the loop so ToolError for a broken binary is direct
        try:
            return run_sync(guarded)
        except errors.Error as exc:
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc)
            raise translate_error(
                stderr, op=op, release=release, namespace=namespace, secrets=secret_leaves(values or {})
            ) from exc
        except ValidationError as exc:
            raise ToolError(
                f"helm {op}: unexpected helm output ({exc.error_count()} fields did not parse)"
            ) from exc

    # ----------------------------------------------------------------------------- offline (render)

    async def _chart(self, chart_ref: str | Path, repo: str | None, version: str | None) -> Any:
        return await self.client.get_chart(_chart_ref(chart_ref), repo=repo, version=version)

    def template(
        self,
        chart_ref: str | Path,
        release: str,
        values: dict | None,
        namespace: str,
        include_crds: bool = True,
        *,
        repo: str | None = None,
        version: str | None = None,
    ) -> list[dict]:
        """``helm template``: the manifests the chart renders with ``values`` over its defaults."""

        async def go() -> list[dict]:
            chart = await self._chart(chart_ref, repo, version)
            docs = await self.client.template_resources(
                chart, release, _plain(values), include_crds=include_crds, namespace=namespace
            )
            return [doc for doc in docs if doc]

        return self._call("template", go, release=release, namespace=namespace, values=values)

    def chart_crds(
        self, chart_ref: str | Path, *, repo: str | None = None, version: str | None = None
    ) -> list[dict]:
        """The CRDs in the chart's ``crds/`` folder (not subcharts'), for installing CRDs first."""

        async def go() -> list[dict]:
            ref = _chart_ref(chart_ref)
            if isinstance(ref, Path) and ref.is_file():  # pyhelm3 cannot read a packaged .tgz
                with tempfile.TemporaryDirectory(prefix="chart-") as tmp, tarfile.open(ref) as tar:
                    tar.extractall(tmp, filter="data")
                    chart = await self._chart(next(Path(tmp).glob("*/Chart.yaml")).parent, None, None)
                    return [crd for crd in await chart.crds() if crd]
            return [crd for crd in await (await self._chart(ref, repo, version)).crds() if crd]

        return self._call("show crds", go)

    # ------------------------------------------------------------------------------- cluster reads

    async def _a_current(self, release: str, namespace: str) -> ReleaseInfo | None:
        from pyhelm3 import errors

        cmd = self.client._command
        try:
            status = await cmd.status(release, namespace=namespace)
        except errors.ReleaseNotFoundError:
            return None
        meta = await cmd.get_chart_metadata(release, namespace=namespace, revision=status["version"]) or {}
        values = (
            status["config"] if "config" in status else await cmd.get_values(release, namespace=namespace)
        )
        info = status.get("info", {})
        return ReleaseInfo(
            status["name"],
            status["namespace"],
            int(status["version"]),
            info.get("status", ""),
            meta.get("name", ""),
            str(meta.get("version", "")),
            meta.get("appVersion"),
            values or {},
            parse_time(info.get("last_deployed")),
            info.get("description") or "",
        )

    def current(self, release: str, namespace: str) -> ReleaseInfo | None:
        """The latest revision (whatever its status), or None when the release does not exist."""
        return self._call(
            "status", lambda: self._a_current(release, namespace), release=release, namespace=namespace
        )

    async def _rows(self, rows: list[dict]) -> list[ReleaseInfo]:
        """ReleaseInfo for `helm history` / `helm list` rows, with each revision's values (8 at a time)."""
        gate = asyncio.Semaphore(8)

        async def one(r: dict) -> ReleaseInfo:
            async with gate:
                values = await self.client._command.get_values(
                    r["name"], namespace=r["namespace"], revision=int(r["revision"])
                )
            return ReleaseInfo(
                r["name"],
                r["namespace"],
                int(r["revision"]),
                r.get("status", ""),
                *split_chart(r.get("chart", "")),
                r.get("app_version") or None,
                values or {},
                parse_time(r.get("updated")),
                r.get("description") or "",
            )

        return list(await asyncio.gather(*(one(r) for r in rows)))

    async def _a_history(self, release: str, namespace: str) -> list[ReleaseInfo]:
        from pyhelm3 import errors

        try:
            rows = list(await self.client._command.history(release, namespace=namespace))
        except errors.ReleaseNotFoundError:
            return []
        return await self._rows([{"name": release, "namespace": namespace, **r} for r in rows])

    def history(self, release: str, namespace: str) -> list[ReleaseInfo]:
        """Every kept revision, oldest first ([] when the release does not exist)."""
        return self._call(
            "history", lambda: self._a_history(release, namespace), release=release, namespace=namespace
        )

    def list_releases(self, namespace: str | None = None) -> list[ReleaseInfo]:
        """Releases in ``namespace`` (all namespaces when None): deployed, failed, pending or uninstalling."""

        async def go() -> list[ReleaseInfo]:
            rows = list(
                await self.client._command.list(
                    all_namespaces=namespace is None,
                    namespace=namespace,
                    include_deployed=True,
                    include_failed=True,
                    include_pending=True,
                    include_uninstalling=True,
                )
            )
            return await self._rows(rows)

        return self._call("list", go, namespace=namespace)

    # ------------------------------------------------------------------------------ cluster writes

    async def _a_install(
        self,
        release: str,
        chart_ref: str | Path,
        values: dict | None,
        namespace: str,
        *,
        wait: bool,
        atomic: bool,
        timeout_s: int | None,
        version: str | None,
        skip_crds: bool,
        repo: str | None,
        create_namespace: bool,
        description: str | None,
    ) -> ReleaseInfo:
        chart = await self._chart(chart_ref, repo, version)
        out = await self.client._command.install_or_upgrade(
            release,
            chart.ref,
            _plain(values),
            namespace=namespace,
            repo=chart.repo,
            version=chart.metadata.version,
            atomic=atomic,
            atomic_arg="--atomic" if self.major < 4 else "--rollback-on-failure",
            wait=wait,
            timeout=f"{timeout_s or self.timeout_s}s",
            skip_crds=skip_crds,
            create_namespace=create_namespace,
            disable_validation=self.disable_validation,
            description=description,
        )
        info = out.get("info", {})
        return ReleaseInfo(
            out["name"],
            out["namespace"],
            int(out["version"]),
            info.get("status", ""),
            chart.metadata.name,
            chart.metadata.version,
            chart.metadata.app_version,
            out.get("config") or _plain(values),
            parse_time(info.get("last_deployed")),
            info.get("description") or "",
        )

    def install_or_upgrade(
        self,
        release: str,
        chart_ref: str | Path,
        values: dict | None,
        namespace: str,
        *,
        wait: bool = False,
        atomic: bool = False,
        timeout_s: int | None = None,
        version: str | None = None,
        skip_crds: bool = False,
        repo: str | None = None,
        create_namespace: bool = False,
        description: str | None = None,
    ) -> ReleaseInfo:
        """``helm upgrade --install`` (``atomic`` maps to ``--rollback-on-failure`` on Helm 4)."""
        kw: _InstallOptions = {
            "wait": wait,
            "atomic": atomic,
            "timeout_s": timeout_s,
            "version": version,
            "skip_crds": skip_crds,
            "repo": repo,
            "create_namespace": create_namespace,
            "description": description,
        }
        return self._call(
            "upgrade --install",
            lambda: self._a_install(release, chart_ref, values, namespace, **kw),
            release=release,
            namespace=namespace,
            values=values,
            timeout_s=timeout_s,
        )

    def ensure(
        self,
        release: str,
        chart_ref: str | Path,
        values: dict | None,
        namespace: str,
        *,
        recover: bool = False,
        wait: bool = False,
        atomic: bool = False,
        timeout_s: int | None = None,
        version: str | None = None,
        skip_crds: bool = False,
        repo: str | None = None,
        create_namespace: bool = False,
        description: str | None = None,
    ) -> ReleaseInfo:
        """Install or upgrade only when the chart (name, version) or values differ from the deployed revision.

        A release that is not ``deployed`` (failed, pending...) is always upgraded. ``recover=True`` first
        runs :meth:`recover_pending` (only when no other run can be active on this release).
        """
        kw: _InstallOptions = {
            "wait": wait,
            "atomic": atomic,
            "timeout_s": timeout_s,
            "version": version,
            "skip_crds": skip_crds,
            "repo": repo,
            "create_namespace": create_namespace,
            "description": description,
        }

        async def go() -> ReleaseInfo:
            current = await self._a_current(release, namespace)
            if recover and current is not None and (current.pending or current.status == "uninstalling"):
                current = await self._a_recover(release, namespace, timeout_s)
            chart = await self._chart(chart_ref, repo, version)
            if (
                current is not None
                and current.status == "deployed"
                and current.chart == chart.metadata.name
                and current.chart_version == chart.metadata.version
                and current.values == _plain(values)
            ):
                return current
            return await self._a_install(release, chart_ref, values, namespace, **kw)

        return self._call(
            "ensure", go, release=release, namespace=namespace, values=values, timeout_s=timeout_s
        )

    async def _a_rollback(
        self,
        release: str,
        namespace: str,
        revision: int | None,
        *,
        wait: bool = False,
        timeout_s: int | None = None,
    ) -> ReleaseInfo:
        await self.client._command.rollback(
            release, revision, namespace=namespace, wait=wait, timeout=f"{timeout_s or self.timeout_s}s"
        )
        info = await self._a_current(release, namespace)
        assert info is not None, "release vanished right after rollback"
        return info

    def rollback(
        self, release: str, namespace: str, revision: int, *, wait: bool = False, timeout_s: int | None = None
    ) -> ReleaseInfo:
        """``helm rollback``; returns the new revision (helm records a rollback as a new revision)."""
        return self._call(
            "rollback",
            lambda: self._a_rollback(release, namespace, revision, wait=wait, timeout_s=timeout_s),
            release=release,
            namespace=namespace,
            timeout_s=timeout_s,
        )

    async def _a_uninstall(
        self, release: str, namespace: str, *, wait: bool = False, timeout_s: int | None = None
    ) -> bool:
        from pyhelm3 import errors

        try:
            await self.client._command.uninstall(
                release, namespace=namespace, wait=wait, timeout=f"{timeout_s or self.timeout_s}s"
            )
        except errors.ReleaseNotFoundError:
            return False
        return True

    def uninstall(
        self, release: str, namespace: str, *, wait: bool = False, timeout_s: int | None = None
    ) -> bool:
        """``helm uninstall``; False (not an error) when there was no such release."""
        return self._call(
            "uninstall",
            lambda: self._a_uninstall(release, namespace, wait=wait, timeout_s=timeout_s),
            release=release,
            namespace=namespace,
            timeout_s=timeout_s,
        )

    async def _a_recover(self, release: str, namespace: str, timeout_s: int | None) -> ReleaseInfo | None:
        current = await self._a_current(release, namespace)
        if current is None or not (current.pending or current.status == "uninstalling"):
            return current
        if current.status != "uninstalling":
            earlier = [
                h
                for h in await self._a_history(release, namespace)
                if h.revision < current.revision and h.status in _DEPLOYED_ONCE
            ]
            if earlier:
                return await self._a_rollback(
                    release, namespace, earlier[-1].revision, wait=True, timeout_s=timeout_s
                )
        await self._a_uninstall(release, namespace, wait=True, timeout_s=timeout_s)
        return None

    def recover_pending(
        self, release: str, namespace: str, *, timeout_s: int | None = None
    ) -> ReleaseInfo | None:
        """Unstick a release left ``pending-*`` (or ``uninstalling``) by an interrupted operation.

        pending-upgrade / pending-rollback (and a pending-install with an earlier deployed revision):
        roll back to the last revision that was deployed, and return the new revision. A
        pending-install that never deployed, or an unfinished uninstall: uninstall, return None.
        Any other status: nothing to do, return the current revision (None if there is no release).
        Only call it when no other operation on the release can still be running.
        """
        return self._call(
            "recover",
            lambda: self._a_recover(release, namespace, timeout_s),
            release=release,
            namespace=namespace,
            timeout_s=timeout_s,
        )
