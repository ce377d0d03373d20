"""A local deployment's monitoring programs (Prometheus, Alertmanager, the alert receiver): start, update, stop.

What they run and how they are configured is rendered purely (runtime/render/local_monitoring.py,
runtime/render/monitoring.py for the rules); this module writes those files into the deployment's
state dir, has the deployment's supervisord run the programs, waits until they are ready, and makes
them reload a changed config. The backend calls ensure() after every rollout.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from runtime.errors import PreflightError
from runtime.gateways import probe
from runtime.gateways.slo_status import slo_state
from runtime.render import local_monitoring as lm
from runtime.render.monitoring import rule_groups
from runtime.targets.local import ports as portlib

if TYPE_CHECKING:
    from runtime.targets.local.backend import LocalBackend


def ensure(backend: LocalBackend) -> dict:
    """Start, update (new scrape targets, new rules) or stop the deployment's monitoring programs."""
    configured = set(backend.supervisor.configured())
    ours = configured & set(lm.PROGRAMS)
    f = lm.files(backend.paths.root)
    if not lm.wanted(backend.spec):
        if ours:
            backend.supervisor.apply([], retire=ours)
            shutil.rmtree(f.root, ignore_errors=True)
        portlib.forget(backend.paths.ports_file, lm.PORT_NAMES)  # ports.json holds what runs now
        return {"monitoring": False}
    return _up(backend, f, configured, ours)


def slo_status(backend: LocalBackend, ports: dict[str, int]) -> dict:
    """{"slo": ...} read from the deployment's Prometheus, or {} when it runs none."""
    if not lm.wanted(backend.spec) or "prometheus" not in ports:
        return {}
    return {"slo": slo_state(backend.spec, f"http://{backend.host}:{ports['prometheus']}")}


def ensure_token(path: Path) -> None:
    """The alert receiver's bearer token: created once, 0600 from the start (never world-readable)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")


def _up(backend: LocalBackend, f: lm.MonitoringFiles, configured: set[str], ours: set[str]) -> dict:
    found = {b: shutil.which(b) for b in ("prometheus", "prometheus-alertmanager")}
    binaries = {b: path for b, path in found.items() if path}
    if len(binaries) < len(found):
        missing = " ".join(b for b, path in found.items() if not path)
        raise PreflightError(
            f"monitoring.prometheus is on but {missing} is not installed",
            hint="apt-get install prometheus prometheus-alertmanager (make debs), "
            "or set monitoring.prometheus: false",
        )
    host, spec = backend.host, backend.spec
    ports = portlib.allocate(
        backend.paths.ports_file, list(lm.PORT_NAMES), host=host, pinned={}, in_use_by_us=ours
    )
    f.root.mkdir(parents=True, exist_ok=True)
    ensure_token(f.receiver_token)
    texts = {
        f.rules: yaml.safe_dump(rule_groups(spec), sort_keys=False),
        f.prometheus_yml: yaml.safe_dump(lm.prometheus_config(spec, f, host, ports), sort_keys=False),
        f.alertmanager_yml: yaml.safe_dump(lm.alertmanager_config(spec, f, host, ports), sort_keys=False),
        f.targets: json.dumps(lm.scrape_targets(spec, host, ports, sorted(configured)), indent=1),
    }
    changed = [p for p, t in texts.items() if not p.exists() or p.read_text() != t]
    for path in changed:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(texts[path])
        tmp.replace(path)
    # Late: importing Prefect takes seconds; only a deployment with monitoring needs its API URL.
    from prefect.settings import PREFECT_API_URL

    programs = lm.programs(
        spec,
        files_=f,
        host=host,
        ports=ports,
        python=sys.executable,
        prometheus=binaries["prometheus"],
        alertmanager=binaries["prometheus-alertmanager"],
        prefect_api_url=PREFECT_API_URL.value() or None,
        identity=backend.paths.identity,
    )
    applied = backend.supervisor.apply(programs)
    restarted = set(applied["added"]) | set(applied["changed"])

    def ready(name: str) -> bool:
        return probe.answers_ok(f"http://{host}:{ports[name]}/-/ready")

    for name in ("prometheus", "alertmanager"):
        probe.ready_within(
            lambda: ready(name),
            60,
            describe=lambda: f"{name} not ready; log tail:\n" + backend.supervisor.tail(name, 800),
        )
        config = f.prometheus_yml if name == "prometheus" else f.alertmanager_yml
        if name not in restarted and (config in changed or (name == "prometheus" and f.rules in changed)):
            # SIGHUP through the deployment's own supervisord (both reload their config on it), not the
            # HTTP reload endpoint, which any user of the host could call too.
            backend.supervisor.signal(name, "HUP")
    return {
        "monitoring": True,
        "prometheus": f"http://{host}:{ports['prometheus']}",
        "alertmanager": f"http://{host}:{ports['alertmanager']}",
        "changed": [p.name for p in changed],
    }
