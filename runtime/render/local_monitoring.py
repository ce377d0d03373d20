"""Pure: the local target's monitoring stack for one deployment, rendered from the spec.

Three supervised programs join the deployment's process plan beside the frontend and the workers (so
they carry DYNADEPLOY_DEPLOYMENT, their ports live in ports.json, and teardown and the inventory find
them like any other program):

- ``prometheus`` (Debian's), scraping the targets in ``monitoring/targets.json`` (file service
  discovery, rewritten on every rollout: the frontend, every worker's system port, etcd when used)
  and evaluating the rules runtime.render.monitoring renders from the spec's SLA;
- ``alertmanager`` (Debian's prometheus-alertmanager), clustering off, routing every alert to
- ``alert-receiver`` (runtime/targets/local/alert_receiver.py), which turns each into a Prefect event.

NATS is not scraped: nats-server has no Prometheus endpoint of its own (it needs the separate
prometheus-nats-exporter). Everything listens on the target's host (loopback by default). No I/O
here: runtime/targets/local/monitoring.py writes the files and applies the programs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from runtime.render.local_plan import DEPLOYMENT_ENV, IDENTITY_ENV, Program

PROGRAMS = ("prometheus", "alertmanager", "alert-receiver")
PORT_NAMES = PROGRAMS
_WORKER = re.compile(r"^(worker|prefill|decode|canary)-(?:r(\d+)-)?\d+$")


def wanted(spec) -> bool:
    """Whether this deployment runs its own Prometheus + Alertmanager (``monitoring.prometheus``)."""
    return spec.monitoring is not None and spec.monitoring.prometheus


@dataclass(frozen=True)
class MonitoringFiles:
    root: Path

    @property
    def prometheus_yml(self) -> Path:
        return self.root / "prometheus.yml"

    @property
    def rules(self) -> Path:
        return self.root / "rules.yml"

    @property
    def targets(self) -> Path:
        return self.root / "targets.json"

    @property
    def alertmanager_yml(self) -> Path:
        return self.root / "alertmanager.yml"

    @property
    def prometheus_data(self) -> Path:
        return self.root / "prometheus-data"

    @property
    def alertmanager_data(self) -> Path:
        return self.root / "alertmanager-data"

    @property
    def alerts_log(self) -> Path:
        return self.root / "alerts.jsonl"

    @property
    def receiver_token(self) -> Path:
        """0600: the bearer token Alertmanager sends the alert receiver (anyone on loopback can connect)."""
        return self.root / "receiver.token"


def files(state_root: Path) -> MonitoringFiles:
    return MonitoringFiles(state_root / "monitoring")


def scrape_targets(spec, host: str, ports: dict[str, int], programs: list[str]) -> list[dict]:
    """file_sd entries: the frontend, each configured worker program with its revision, etcd."""
    base = {"deployment": spec.name}
    out = [
        {
            "targets": [f"{host}:{ports['frontend']}"],
            "labels": {**base, "role": "frontend", "program": "frontend"},
        }
    ]
    for name in sorted(programs):
        m = _WORKER.match(name)
        if not m or name not in ports:
            continue
        role = "worker" if m.group(1) == "canary" else m.group(1)
        labels = {**base, "role": role, "program": name}
        if m.group(2):
            labels["revision"] = m.group(2)
        out.append({"targets": [f"{host}:{ports[name]}"], "labels": labels})
    if "etcd" in programs and "etcd" in ports:
        out.append(
            {"targets": [f"{host}:{ports['etcd']}"], "labels": {**base, "role": "etcd", "program": "etcd"}}
        )
    return out


def prometheus_config(spec, files_: MonitoringFiles, host: str, ports: dict[str, int]) -> dict:
    mon = spec.monitoring
    return {
        "global": {
            "scrape_interval": mon.scrape_interval,
            "evaluation_interval": mon.evaluation_interval,
            "scrape_timeout": mon.scrape_interval if _short(mon.scrape_interval) else "10s",
        },
        "rule_files": [str(files_.rules)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"{host}:{ports['alertmanager']}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": f"dynadeploy-{spec.name}",
                "file_sd_configs": [{"files": [str(files_.targets)], "refresh_interval": "5s"}],
            }
        ],
    }


def _short(duration: str) -> bool:
    from runtime.spec import duration_s

    return duration_s(duration) < 10


def alertmanager_config(spec, files_: MonitoringFiles, host: str, ports: dict[str, int]) -> dict:
    mon = spec.monitoring
    return {
        "route": {
            "receiver": "dynadeploy",
            "group_by": ["alertname", "deployment", "slo", "long_window"],
            # Wait one rule evaluation for siblings, then send: the event should be about as fast as the rule.
            "group_wait": mon.evaluation_interval,
            "group_interval": "1m",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": "dynadeploy",
                "webhook_configs": [
                    {
                        "url": f"http://{host}:{ports['alert-receiver']}/alerts",
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": str(files_.receiver_token),
                            }
                        },
                    }
                ],
            }
        ],
    }


def programs(
    spec,
    *,
    files_: MonitoringFiles,
    host: str,
    ports: dict[str, int],
    python: str,
    prometheus: str = "prometheus",
    alertmanager: str = "prometheus-alertmanager",
    prefect_api_url: str | None = None,
    identity: str | None = None,
) -> list[Program]:
    # The same markers as every program of the deployment (plan.identity_env): teardown and the inventory
    # find these processes by them.
    env = {DEPLOYMENT_ENV: spec.name, **({IDENTITY_ENV: identity} if identity else {})}
    prom = Program(
        "prometheus",
        "prometheus",
        (
            prometheus,
            f"--config.file={files_.prometheus_yml}",
            f"--storage.tsdb.path={files_.prometheus_data}",
            # No --web.enable-lifecycle: /-/reload and /-/quit would be open to every user of the host.
            # runtime/targets/local/backend.py reloads by SIGHUP through supervisord instead.
            f"--web.listen-address={host}:{ports['prometheus']}",
            "--storage.tsdb.retention.time=15d",
        ),
        env,
        port=ports["prometheus"],
        stop_wait_s=10,
    )
    am = Program(
        "alertmanager",
        "alertmanager",
        (
            alertmanager,
            f"--config.file={files_.alertmanager_yml}",
            f"--storage.path={files_.alertmanager_data}",
            f"--web.listen-address={host}:{ports['alertmanager']}",
            "--cluster.listen-address=",
        ),
        env,
        port=ports["alertmanager"],
        stop_wait_s=10,
    )
    receiver_env = {**env, "PYTHONUNBUFFERED": "1"}
    if prefect_api_url:
        receiver_env["PREFECT_API_URL"] = prefect_api_url
    receiver = Program(
        "alert-receiver",
        "alert-receiver",
        (
            python,
            "-m",
            "runtime.targets.local.alert_receiver",
            "--host",
            host,
            "--port",
            str(ports["alert-receiver"]),
            "--deployment",
            spec.name,
            "--state-dir",
            str(files_.root.parent),
            "--log",
            str(files_.alerts_log),
            "--token-file",
            str(files_.receiver_token),
            *(["--no-events"] if not spec.monitoring.alert_events else []),
            *(
                ["--rollback-deployment", spec.monitoring.rollback_deployment]
                if spec.monitoring.rollback_deployment
                else []
            ),
            *(["--auto-rollback"] if spec.monitoring.auto_rollback else []),
        ),
        receiver_env,
        port=ports["alert-receiver"],
        stop_wait_s=5,
    )
    return [prom, am, receiver]
