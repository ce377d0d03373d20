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
import datetime as dt
import functools
import json
import logging
import re
import tarfile
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from runtime.errors import DynadeployError, ToolError, TransientError
from runtime.gateways.toolchain import binary

T = TypeVar("T")
logging.getLogger("pyhelm3").addHandler(logging.NullHandler())  # failures surface as our errors instead
DISABLE_VALIDATION_FLAG = "--disable-openapi-validation"
PENDING_STATUSES = frozenset({"pending-install", "pending-upgrade", "pending-rollback"})
_DEPLOYED_ONCE = frozenset({"deployed", "superseded"})


@dataclass(frozen=True)
class ReleaseInfo:
    """One revision of a helm release. ``values`` are the user-supplied values (``helm get values``)."""

    name: str
    namespace: str
    revision: int
    status: str
    chart: str
    chart_version: str
    app_version: str | None
    values: dict = field(default_factory=dict, hash=False, repr=False)  # may hold secrets
    updated: dt.datetime | None = None
    description: str = ""

    @property
    def pending(self) -> bool:
        return self.status in PENDING_STATUSES


# ------------------------------------------------------------------------------- pyhelm3 workaround


def rejoin_flags(argv: Iterable[Any], flag: str = DISABLE_VALIDATION_FLAG) -> list[Any]:
    """Undo ``list.extend(flag)``: a run of single characters spelling ``flag`` becomes ``flag``."""
    argv, chars, out, i = list(argv), list(flag), [], 0
    while i < len(argv):
        if argv[i : i + len(chars)] == chars:
            out.append(flag)
            i += len(chars)
        else:
            out.append(argv[i])
            i += 1
    return out


@functools.cache
def fixed_command_class() -> type:
    """pyhelm3's Command with the disable-validation argv fixed (pyhelm3 imported lazily)."""
    from pyhelm3.command import Command

    class FixedCommand(Command):
        async def run(self, command, input=None):
            return await super().run(rejoin_flags(command), input)

    return FixedCommand


# ---------------------------------------------------------------------------------- error translation

_PENDING = "another operation (install/upgrade/rollback) is in progress"
_CONFIG = re.compile(
    r"invalid configuration|no configuration has been provided|context \"[^\"]*\" does not exist"
    r"|unauthorized|forbidden|x509:|certificate signed by unknown authority|error loading config"
)
_TRANSIENT = re.compile(
    r"connection refused|connection reset|broken pipe|unexpected eof|i/o timeout|handshake timeout"
    r"|timed out|deadline exceeded|client\.timeout|network is unreachable|no route to host|etcdserver"
    r"|too many requests|try again later|rate limit|server is currently unable|an error on the server"
    r"|internal server error|internal error occurred|service unavailable|bad gateway|gateway timeout"
    r"|status code:? ?(?:429|5\d\d)\b|the object has been modified"
    r"|because it is being terminated|context canceled|goaway|cluster unreachable"
)
_PERMANENT_HINTS = (
    (re.compile(r"apply failed with \d+ conflicts?"),
     "another field manager owns these fields; reconcile the owner or install with force-conflicts"),
    (re.compile(r"namespaces? \"[^\"]*\" not found"),
     "create the namespace first (the project manages namespaces) or pass create_namespace=True"),
    (re.compile(r"release: not found"), "no such release in this namespace"),
    (re.compile(r"not found|no such file|failed to download|invalid chart|chart\.yaml"),
     "check the chart reference, repository and version"),
    (re.compile(r"schema|execution error|parse error|converting yaml|unable to build kubernetes|is invalid"),
     "fix the values or templates (render with Helm.template to see the manifests)"),
    (re.compile(r"already exists"), "adopt or delete the existing object, or use another release name"),
)
_RETRY_AFTER = re.compile(r"retry[- ]after[\"':=\s]+(\d+(?:\.\d+)?)")
_SECRET_KEY = r"(?:token|password|passwd|pwd|secret|api[_-]?key|access[_-]?key|private[_-]?key|credential)"
_REDACTIONS = (
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1***"),
    (re.compile(r"(?i)(" + _SECRET_KEY + r"[\w.-]*[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"), r"\1***"),
    (re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*"), "***"),
    (re.compile(r"\b(?:hf_|ghp_|gho_|ghs_|github_pat_|nvapi-|sk-|xox[abp]-|AKIA)[\w-]{12,}"), "***"),
    (re.compile(r"(?=[A-Za-z0-9+/]*\d)(?=[A-Za-z0-9+/]*[A-Za-z])[A-Za-z0-9+/]{40,}={0,2}"), "***"),
)


def secret_leaves(values: Any, *, _key: str = "") -> list[str]:
    """String values stored under secret-looking keys (to scrub from error text)."""
    if isinstance(values, dict):
        return [s for k, v in values.items() for s in secret_leaves(v, _key=str(k))]
    if isinstance(values, list):
        return [s for v in values for s in secret_leaves(v, _key=_key)]
    secretish = re.search(_SECRET_KEY, _key, re.IGNORECASE)
    return [values] if secretish and isinstance(values, str) and len(values) >= 4 else []


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    for pattern, repl in _REDACTIONS:
        text = pattern.sub(repl, text)
    return text


def trim_stderr(stderr: str, limit: int = 800) -> str:
    lines = [ln.strip() for ln in stderr.splitlines()]
    keep = [ln.removeprefix("Error: ") for ln in lines
            if ln and not ln.startswith("Use --debug") and not ln.startswith("WARNING: Kubernetes configuration")]
    text = " | ".join(keep) or "no output from helm"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def translate_error(stderr: str, *, op: str, release: str | None = None, namespace: str | None = None,
                    secrets: Iterable[str] = ()) -> DynadeployError:
    """Map helm's stderr to the project's error tree (never including secret values)."""
    detail = trim_stderr(redact(stderr, secrets))
    what = f"helm {op}" + (f" {release}" if release else "") + (f" -n {namespace}" if namespace else "")
    message = f"{what} failed: {detail}"
    low = stderr.lower()
    if _PENDING in low:
        rel, ns = release or "<release>", namespace or "<namespace>"
        return TransientError(message, hint=(
            f"a previous helm operation on {rel} did not finish; once no other run is active, call "
            f"Helm.recover_pending({rel!r}, {ns!r}) or run `helm rollback {rel} -n {ns}`"))
    if _CONFIG.search(low) and "being terminated" not in low:
        return ToolError(message, hint="check the kubeconfig, context and credentials")
    if _TRANSIENT.search(low):
        match = _RETRY_AFTER.search(low)
        return TransientError(message, retry_after=float(match.group(1)) if match else None,
                              hint="the Kubernetes API or chart source was unavailable; retry")
    for pattern, hint in _PERMANENT_HINTS:
        if pattern.search(low):
            return ToolError(message, hint=hint)
    return ToolError(message)


# ---------------------------------------------------------------------------------------- helpers


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even when a loop is already running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="helm") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _plain(values: dict | None) -> dict:
    """Values as helm stores them (JSON round trip: tuples -> lists, keys -> str)."""
    return json.loads(json.dumps(values or {}, default=str))


_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?")


def parse_time(text: str | None) -> dt.datetime | None:
    """helm's timestamps: RFC 3339 (status/history) or Go's default format (list)."""
    match = _TIME.search(text or "")
    if not match:
        return None
    day, clock, frac, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    return dt.datetime.fromisoformat(f"{day}T{clock}.{(frac or '0')[:6].ljust(6, '0')}{zone}")


def split_chart(chart: str) -> tuple[str, str]:
    """``"dynamo-platform-0.9.1-rc.1"`` -> ``("dynamo-platform", "0.9.1-rc.1")``."""
    match = re.fullmatch(r"(.+)-(v?\d+\.\d+\.\d+\S*)", chart or "")
    return (match.group(1), match.group(2)) if match else (chart or "", "")


def _chart_ref(chart_ref: str | Path) -> str | Path:
    path = Path(chart_ref)
    return path.resolve() if path.exists() else str(chart_ref)


# ------------------------------------------------------------------------------------------ facade


class Helm:
    """Blocking helm operations against one cluster (kubeconfig + context)."""

    def __init__(self, kubeconfig: str | None, context: str | None = None, *, timeout_s: int = 600,
                 disable_validation: bool = False, major: int | None = None, executable: str | None = None,
                 history_max: int = 10) -> None:
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
                default_timeout=f"{self.timeout_s}s", executable=self.executable,
                history_max_revisions=self.history_max, kubecontext=self.context,
                kubeconfig=Path(self.kubeconfig) if self.kubeconfig else None)
            try:
                self._client = Client(command, executable=self.executable)
            except Exception as exc:  # AssertionError (no binary), CalledProcessError, ValueError
                raise ToolError(f"cannot run {self.executable} version: {exc}") from exc
        return self._client

    @property
    def major(self) -> int:
        return int(self.client.version.major)

    def _call(self, op: str, factory: Callable[[], Awaitable[T]], *, release: str | None = None,
              namespace: str | None = None, values: dict | None = None, timeout_s: int | None = None) -> T:
        from pydantic import ValidationError
        from pyhelm3 import errors

        limit = (timeout_s or self.timeout_s) + self.watchdog_margin_s

        async def guarded() -> T:
            try:
                return await asyncio.wait_for(factory(), limit)
            except TimeoutError:
                what = f"helm {op}" + (f" {release}" if release else "")
                raise TransientError(f"{what} did not finish within {limit}s",
                                     hint="the API server is slow or unreachable; retry") from None

        self.client  # noqa: B018 - build outside the loop so ToolError for a broken binary is direct
        try:
            return run_sync(guarded)
        except errors.Error as exc:
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc)
            raise translate_error(stderr, op=op, release=release, namespace=namespace,
                                  secrets=secret_leaves(values or {})) from exc
        except ValidationError as exc:
            raise ToolError(f"helm {op}: unexpected helm output ({exc.error_count()} fields did not parse)") from exc

    # ----------------------------------------------------------------------------- offline (render)

    async def _chart(self, chart_ref: str | Path, repo: str | None, version: str | None) -> Any:
        return await self.client.get_chart(_chart_ref(chart_ref), repo=repo, version=version)

    def template(self, chart_ref: str | Path, release: str, values: dict | None, namespace: str,
                 include_crds: bool = True, *, repo: str | None = None, version: str | None = None) -> list[dict]:
        """``helm template``: the manifests the chart renders with ``values`` over its defaults."""
        async def go() -> list[dict]:
            chart = await self._chart(chart_ref, repo, version)
            docs = await self.client.template_resources(chart, release, _plain(values),
                                                        include_crds=include_crds, namespace=namespace)
            return [doc for doc in docs if doc]
        return self._call("template", go, release=release, namespace=namespace, values=values)

    def chart_crds(self, chart_ref: str | Path, *, repo: str | None = None, version: str | None = None) -> list[dict]:
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
        values = status["config"] if "config" in status else await cmd.get_values(release, namespace=namespace)
        info = status.get("info", {})
        return ReleaseInfo(status["name"], status["namespace"], int(status["version"]), info.get("status", ""),
                           meta.get("name", ""), str(meta.get("version", "")), meta.get("appVersion"),
                           values or {}, parse_time(info.get("last_deployed")), info.get("description") or "")

    def current(self, release: str, namespace: str) -> ReleaseInfo | None:
        """The latest revision (whatever its status), or None when the release does not exist."""
        return self._call("status", lambda: self._a_current(release, namespace), release=release,
                          namespace=namespace)

    async def _rows(self, rows: list[dict]) -> list[ReleaseInfo]:
        """ReleaseInfo for `helm history` / `helm list` rows, with each revision's values (8 at a time)."""
        gate = asyncio.Semaphore(8)

        async def one(r: dict) -> ReleaseInfo:
            async with gate:
                values = await self.client._command.get_values(
                    r["name"], namespace=r["namespace"], revision=int(r["revision"]))
            return ReleaseInfo(r["name"], r["namespace"], int(r["revision"]), r.get("status", ""),
                               *split_chart(r.get("chart", "")), r.get("app_version") or None, values or {},
                               parse_time(r.get("updated")), r.get("description") or "")
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
        return self._call("history", lambda: self._a_history(release, namespace), release=release,
                          namespace=namespace)

    def list_releases(self, namespace: str | None = None) -> list[ReleaseInfo]:
        """Releases in ``namespace`` (all namespaces when None): deployed, failed, pending or uninstalling."""
        async def go() -> list[ReleaseInfo]:
            rows = list(await self.client._command.list(
                all_namespaces=namespace is None, namespace=namespace, include_deployed=True,
                include_failed=True, include_pending=True, include_uninstalling=True))
            return await self._rows(rows)
        return self._call("list", go, namespace=namespace)

    # ------------------------------------------------------------------------------ cluster writes

    async def _a_install(self, release: str, chart_ref: str | Path, values: dict | None, namespace: str, *,
                         wait: bool, atomic: bool, timeout_s: int | None, version: str | None, skip_crds: bool,
                         repo: str | None, create_namespace: bool, description: str | None) -> ReleaseInfo:
        chart = await self._chart(chart_ref, repo, version)
        out = await self.client._command.install_or_upgrade(
            release, chart.ref, _plain(values), namespace=namespace, repo=chart.repo, version=chart.metadata.version,
            atomic=atomic, atomic_arg="--atomic" if self.major < 4 else "--rollback-on-failure",
            wait=wait, timeout=f"{timeout_s or self.timeout_s}s", skip_crds=skip_crds,
            create_namespace=create_namespace, disable_validation=self.disable_validation, description=description)
        info = out.get("info", {})
        return ReleaseInfo(out["name"], out["namespace"], int(out["version"]), info.get("status", ""),
                           chart.metadata.name, chart.metadata.version, chart.metadata.app_version,
                           out.get("config") or _plain(values), parse_time(info.get("last_deployed")),
                           info.get("description") or "")

    def install_or_upgrade(self, release: str, chart_ref: str | Path, values: dict | None, namespace: str, *,
                           wait: bool = False, atomic: bool = False, timeout_s: int | None = None,
                           version: str | None = None, skip_crds: bool = False, repo: str | None = None,
                           create_namespace: bool = False, description: str | None = None) -> ReleaseInfo:
        """``helm upgrade --install`` (``atomic`` maps to ``--rollback-on-failure`` on Helm 4)."""
        kw = {"wait": wait, "atomic": atomic, "timeout_s": timeout_s, "version": version, "skip_crds": skip_crds,
              "repo": repo, "create_namespace": create_namespace, "description": description}
        return self._call("upgrade --install", lambda: self._a_install(release, chart_ref, values, namespace, **kw),
                          release=release, namespace=namespace, values=values, timeout_s=timeout_s)

    def ensure(self, release: str, chart_ref: str | Path, values: dict | None, namespace: str, *,
               recover: bool = False, wait: bool = False, atomic: bool = False, timeout_s: int | None = None,
               version: str | None = None, skip_crds: bool = False, repo: str | None = None,
               create_namespace: bool = False, description: str | None = None) -> ReleaseInfo:
        """Install or upgrade only when the chart (name, version) or values differ from the deployed revision.

        A release that is not ``deployed`` (failed, pending...) is always upgraded. ``recover=True`` first
        runs :meth:`recover_pending` (only when no other run can be active on this release).
        """
        kw = {"wait": wait, "atomic": atomic, "timeout_s": timeout_s, "version": version, "skip_crds": skip_crds,
              "repo": repo, "create_namespace": create_namespace, "description": description}

        async def go() -> ReleaseInfo:
            current = await self._a_current(release, namespace)
            if recover and current is not None and (current.pending or current.status == "uninstalling"):
                current = await self._a_recover(release, namespace, timeout_s)
            chart = await self._chart(chart_ref, repo, version)
            if (current is not None and current.status == "deployed" and current.chart == chart.metadata.name
                    and current.chart_version == chart.metadata.version and current.values == _plain(values)):
                return current
            return await self._a_install(release, chart_ref, values, namespace, **kw)
        return self._call("ensure", go, release=release, namespace=namespace, values=values, timeout_s=timeout_s)

    async def _a_rollback(self, release: str, namespace: str, revision: int | None, *, wait: bool = False,
                          timeout_s: int | None = None) -> ReleaseInfo:
        await self.client._command.rollback(release, revision, namespace=namespace, wait=wait,
                                             timeout=f"{timeout_s or self.timeout_s}s")
        info = await self._a_current(release, namespace)
        assert info is not None, "release vanished right after rollback"
        return info

    def rollback(self, release: str, namespace: str, revision: int, *, wait: bool = False,
                 timeout_s: int | None = None) -> ReleaseInfo:
        """``helm rollback``; returns the new revision (helm records a rollback as a new revision)."""
        return self._call("rollback", lambda: self._a_rollback(release, namespace, revision, wait=wait,
                                                               timeout_s=timeout_s),
                          release=release, namespace=namespace, timeout_s=timeout_s)

    async def _a_uninstall(self, release: str, namespace: str, *, wait: bool = False,
                           timeout_s: int | None = None) -> bool:
        from pyhelm3 import errors

        try:
            await self.client._command.uninstall(release, namespace=namespace, wait=wait,
                                                 timeout=f"{timeout_s or self.timeout_s}s")
        except errors.ReleaseNotFoundError:
            return False
        return True

    def uninstall(self, release: str, namespace: str, *, wait: bool = False, timeout_s: int | None = None) -> bool:
        """``helm uninstall``; False (not an error) when there was no such release."""
        return self._call("uninstall", lambda: self._a_uninstall(release, namespace, wait=wait, timeout_s=timeout_s),
                          release=release, namespace=namespace, timeout_s=timeout_s)

    async def _a_recover(self, release: str, namespace: str, timeout_s: int | None) -> ReleaseInfo | None:
        current = await self._a_current(release, namespace)
        if current is None or not (current.pending or current.status == "uninstalling"):
            return current
        if current.status != "uninstalling":
            earlier = [h for h in await self._a_history(release, namespace)
                       if h.revision < current.revision and h.status in _DEPLOYED_ONCE]
            if earlier:
                return await self._a_rollback(release, namespace, earlier[-1].revision, wait=True, timeout_s=timeout_s)
        await self._a_uninstall(release, namespace, wait=True, timeout_s=timeout_s)
        return None

    def recover_pending(self, release: str, namespace: str, *, timeout_s: int | None = None) -> ReleaseInfo | None:
        """Unstick a release left ``pending-*`` (or ``uninstalling``) by an interrupted operation.

        pending-upgrade / pending-rollback (and a pending-install with an earlier deployed revision):
        roll back to the last revision that was deployed, and return the new revision. A
        pending-install that never deployed, or an unfinished uninstall: uninstall, return None.
        Any other status: nothing to do, return the current revision (None if there is no release).
        Only call it when no other operation on the release can still be running.
        """
        return self._call("recover", lambda: self._a_recover(release, namespace, timeout_s),
                          release=release, namespace=namespace, timeout_s=timeout_s)
