"""Helm failures in the project's error tree: helm's stderr classified (a locked release, unreachable API,
bad chart/values) and scrubbed of anything token-like before it reaches a message (runtime/gateways/helm.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from runtime.errors import DynadeployError, ToolError, TransientError

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
    (
        re.compile(r"apply failed with \d+ conflicts?"),
        "another field manager owns these fields; reconcile the owner or install with force-conflicts",
    ),
    (
        re.compile(r"namespaces? \"[^\"]*\" not found"),
        "create the namespace first (the project manages namespaces) or pass create_namespace=True",
    ),
    (re.compile(r"release: not found"), "no such release in this namespace"),
    (
        re.compile(r"not found|no such file|failed to download|invalid chart|chart\.yaml"),
        "check the chart reference, repository and version",
    ),
    (
        re.compile(
            r"schema|execution error|parse error|converting yaml|unable to build kubernetes|is invalid"
        ),
        "fix the values or templates (render with Helm.template to see the manifests)",
    ),
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
    keep = [
        ln.removeprefix("Error: ")
        for ln in lines
        if ln and not ln.startswith("Use --debug") and not ln.startswith("WARNING: Kubernetes configuration")
    ]
    text = " | ".join(keep) or "no output from helm"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def translate_error(
    stderr: str,
    *,
    op: str,
    release: str | None = None,
    namespace: str | None = None,
    secrets: Iterable[str] = (),
) -> DynadeployError:
    """Map helm's stderr to the project's error tree (never including secret values)."""
    detail = trim_stderr(redact(stderr, secrets))
    what = f"helm {op}" + (f" {release}" if release else "") + (f" -n {namespace}" if namespace else "")
    message = f"{what} failed: {detail}"
    low = stderr.lower()
    if _PENDING in low:
        rel, ns = release or "<release>", namespace or "<namespace>"
        return TransientError(
            message,
            hint=(
                f"a previous helm operation on {rel} did not finish; once no other run is active, call "
                f"Helm.recover_pending({rel!r}, {ns!r}) or run `helm rollback {rel} -n {ns}`"
            ),
        )
    if _CONFIG.search(low) and "being terminated" not in low:
        return ToolError(message, hint="check the kubeconfig, context and credentials")
    if _TRANSIENT.search(low):
        match = _RETRY_AFTER.search(low)
        return TransientError(
            message,
            retry_after=float(match.group(1)) if match else None,
            hint="the Kubernetes API or chart source was unavailable; retry",
        )
    for pattern, hint in _PERMANENT_HINTS:
        if pattern.search(low):
            return ToolError(message, hint=hint)
    return ToolError(message)
