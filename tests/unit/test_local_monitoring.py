"""runtime.local.monitoring: the local Prometheus/Alertmanager/receiver plan (pure), checked by the real
`promtool check config` and `amtool check-config`; loopback only; the programs carry the deployment marker."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from runtime import monitoring
from runtime.local import monitoring as lm
from runtime.local.plan import DEPLOYMENT_ENV, IDENTITY_ENV
from runtime.spec import API_VERSION, parse_spec

PORTS = {"frontend": 8000, "worker-r3-0": 20001, "worker-r3-1": 20002, "canary-0": 20003, "etcd": 2379,
         "prometheus": 9090, "alertmanager": 9093, "alert-receiver": 9094}
SPEC = parse_spec({"apiVersion": API_VERSION, "name": "lm", "monitoring": {
    "rollback_deployment": "rollback/rollback-local", "auto_rollback": True}})


def test_scrape_targets_label_every_program_with_deployment_role_and_revision():
    targets = lm.scrape_targets(SPEC, "127.0.0.1", PORTS, ["frontend", "worker-r3-0", "worker-r3-1", "canary-0",
                                                            "etcd", "nats", "prometheus"])
    assert [(t["targets"][0], t["labels"]["role"], t["labels"].get("revision")) for t in targets] == [
        ("127.0.0.1:8000", "frontend", None), ("127.0.0.1:20003", "worker", None),
        ("127.0.0.1:20001", "worker", "3"), ("127.0.0.1:20002", "worker", "3"), ("127.0.0.1:2379", "etcd", None)]
    assert {t["labels"]["deployment"] for t in targets} == {"lm"}


def test_programs_bind_loopback_and_carry_the_deployment_marker():
    files = lm.files(Path("/state/deployments/lm"))
    progs = lm.programs(SPEC, files_=files, host="127.0.0.1", ports=PORTS, python="/venv/bin/python",
                        prefect_api_url="http://127.0.0.1:4200/api", identity="abc123")
    assert [p.name for p in progs] == list(lm.PROGRAMS)
    for p in progs:
        assert p.env[DEPLOYMENT_ENV] == "lm" and p.env[IDENTITY_ENV] == "abc123"
        assert any("127.0.0.1:" in a or a == "127.0.0.1" for a in p.command), p.command
        assert not any("0.0.0.0" in a for a in p.command)
    assert "--cluster.listen-address=" in progs[1].command  # no gossip port
    receiver = progs[2]
    assert receiver.env["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"
    assert "--auto-rollback" in receiver.command and "rollback/rollback-local" in receiver.command


@pytest.mark.skipif(not (shutil.which("promtool") and shutil.which("amtool")), reason="run `make debs`")
def test_rendered_configs_pass_promtool_and_amtool(tmp_path):
    files = lm.files(tmp_path)
    files.root.mkdir()
    files.rules.write_text(yaml.safe_dump(monitoring.rule_groups(SPEC)))
    files.targets.write_text(json.dumps(lm.scrape_targets(SPEC, "127.0.0.1", PORTS, list(PORTS))))
    files.prometheus_yml.write_text(yaml.safe_dump(lm.prometheus_config(SPEC, files, "127.0.0.1", PORTS)))
    files.alertmanager_yml.write_text(yaml.safe_dump(lm.alertmanager_config(SPEC, "127.0.0.1", PORTS)))
    for cmd in (["promtool", "check", "config", str(files.prometheus_yml)],
                ["amtool", "check-config", str(files.alertmanager_yml)]):
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
    fast = parse_spec({"apiVersion": API_VERSION, "name": "lm", "monitoring": {"scrape_interval": "1s"}})
    assert lm.prometheus_config(fast, files, "127.0.0.1", PORTS)["global"]["scrape_timeout"] == "1s"


def test_slo_status_with_no_traffic_is_no_data_not_nan(monkeypatch):
    """0/0 over a window without traffic is NaN in Prometheus: the state says None ("no data"), the CLI
    never prints "nanx", and the JSON is valid (no NaN)."""
    from runtime import slo_status

    def fake_get(url: str, timeout: float) -> dict:
        if "/api/v1/alerts" in url:
            return {"data": {"alerts": []}}
        value = "NaN" if "ttft" in url else "0.001"
        return {"data": {"result": [{"value": [0, value]}]}}

    monkeypatch.setattr(slo_status, "_get", fake_get)
    state = slo_status.slo_state(SPEC, "http://127.0.0.1:9")
    assert "error" not in state
    assert {k: v for k, v in state["burn_rates"].items() if k.startswith("ttft")} == {"ttft 5m": None, "ttft 30m": None,
                                                                                       "ttft 1h": None, "ttft 6h": None}
    assert all(v is not None for k, v in state["burn_rates"].items() if not k.startswith("ttft"))
    json.loads(json.dumps(state, allow_nan=False))
    text = "\n".join(slo_status.lines(state))
    assert "nan" not in text.lower() and "ttft 5m no data" in text
