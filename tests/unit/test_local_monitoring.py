"""runtime.render.local_monitoring: the local Prometheus/Alertmanager/receiver plan (pure), checked by the real
`promtool check config` and `amtool check-config`; loopback only; the programs carry the deployment marker."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from runtime.render import local_monitoring as lm
from runtime.render import monitoring
from runtime.render.local_plan import DEPLOYMENT_ENV, IDENTITY_ENV
from runtime.spec import API_VERSION, parse_spec

PORTS = {
    "frontend": 8000,
    "worker-r3-0": 20001,
    "worker-r3-1": 20002,
    "canary-0": 20003,
    "etcd": 2379,
    "prometheus": 9090,
    "alertmanager": 9093,
    "alert-receiver": 9094,
}
SPEC = parse_spec(
    {
        "apiVersion": API_VERSION,
        "name": "lm",
        "monitoring": {"rollback_deployment": "rollback/rollback-local", "auto_rollback": True},
    }
)


def test_scrape_targets_label_every_program_with_deployment_role_and_revision():
    targets = lm.scrape_targets(
        SPEC,
        "127.0.0.1",
        PORTS,
        ["frontend", "worker-r3-0", "worker-r3-1", "canary-0", "etcd", "nats", "prometheus"],
    )
    assert [(t["targets"][0], t["labels"]["role"], t["labels"].get("revision")) for t in targets] == [
        ("127.0.0.1:8000", "frontend", None),
        ("127.0.0.1:20003", "worker", None),
        ("127.0.0.1:20001", "worker", "3"),
        ("127.0.0.1:20002", "worker", "3"),
        ("127.0.0.1:2379", "etcd", None),
    ]
    assert {t["labels"]["deployment"] for t in targets} == {"lm"}


def test_programs_bind_loopback_and_carry_the_deployment_marker():
    files = lm.files(Path("/state/deployments/lm"))
    progs = lm.programs(
        SPEC,
        files_=files,
        host="127.0.0.1",
        ports=PORTS,
        python="/venv/bin/python",
        prefect_api_url="http://127.0.0.1:4200/api",
        identity="abc123",
    )
    assert [p.name for p in progs] == list(lm.PROGRAMS)
    for p in progs:
        assert p.env[DEPLOYMENT_ENV] == "lm" and p.env[IDENTITY_ENV] == "abc123"
        assert any("127.0.0.1:" in a or a == "127.0.0.1" for a in p.command), p.command
        assert not any("0.0.0.0" in a for a in p.command)
    assert "--cluster.listen-address=" in progs[1].command  # no gossip port
    # no HTTP lifecycle API (/-/quit, /-/reload) for every user of the host: reloads go through supervisord
    assert not any("lifecycle" in a for a in progs[0].command)
    receiver = progs[2]
    assert receiver.env["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"
    assert "--auto-rollback" in receiver.command and "rollback/rollback-local" in receiver.command
    assert receiver.command[receiver.command.index("--token-file") + 1] == str(files.receiver_token)
    (hook,) = lm.alertmanager_config(SPEC, files, "127.0.0.1", PORTS)["receivers"][0]["webhook_configs"]
    assert hook["http_config"]["authorization"] == {
        "type": "Bearer",
        "credentials_file": str(files.receiver_token),
    }


@pytest.mark.skipif(not (shutil.which("promtool") and shutil.which("amtool")), reason="run `make debs`")
def test_rendered_configs_pass_promtool_and_amtool(tmp_path):
    files = lm.files(tmp_path)
    files.root.mkdir()
    files.rules.write_text(yaml.safe_dump(monitoring.rule_groups(SPEC)))
    files.targets.write_text(json.dumps(lm.scrape_targets(SPEC, "127.0.0.1", PORTS, list(PORTS))))
    files.prometheus_yml.write_text(yaml.safe_dump(lm.prometheus_config(SPEC, files, "127.0.0.1", PORTS)))
    files.receiver_token.write_text("t" * 43)
    files.alertmanager_yml.write_text(yaml.safe_dump(lm.alertmanager_config(SPEC, files, "127.0.0.1", PORTS)))
    for cmd in (
        ["promtool", "check", "config", str(files.prometheus_yml)],
        ["amtool", "check-config", str(files.alertmanager_yml)],
    ):
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
    fast = parse_spec({"apiVersion": API_VERSION, "name": "lm", "monitoring": {"scrape_interval": "1s"}})
    assert lm.prometheus_config(fast, files, "127.0.0.1", PORTS)["global"]["scrape_timeout"] == "1s"


def test_slo_status_with_no_traffic_is_no_data_not_nan(monkeypatch):
    """0/0 over a window without traffic is NaN in Prometheus: the state says None ("no data"), the CLI
    never prints "nanx", and the JSON is valid (no NaN)."""
    from runtime.gateways import slo_status

    def fake_get(url: str, timeout: float) -> dict:
        if "/api/v1/alerts" in url:
            return {"data": {"alerts": []}}
        value = "NaN" if "ttft" in url else "0.001"
        return {"data": {"result": [{"value": [0, value]}]}}

    monkeypatch.setattr(slo_status, "_get", fake_get)
    state = slo_status.slo_state(SPEC, "http://127.0.0.1:9")
    assert "error" not in state
    assert {k: v for k, v in state["burn_rates"].items() if k.startswith("ttft")} == {
        "ttft 5m": None,
        "ttft 30m": None,
        "ttft 1h": None,
        "ttft 6h": None,
    }
    assert all(v is not None for k, v in state["burn_rates"].items() if not k.startswith("ttft"))
    json.loads(json.dumps(state, allow_nan=False))
    text = "\n".join(slo_status.lines(state))
    assert "nan" not in text.lower() and "ttft 5m no data" in text


def test_alert_receiver_refuses_a_post_without_the_token_and_makes_no_event(tmp_path):
    """Loopback is shared by every user of the host: only a POST with the token file's bearer token
    (what Alertmanager sends) becomes an event; anything else is 401 and leaves no trace."""
    import socket
    import sys
    import time
    import urllib.error
    import urllib.request

    from runtime.targets.local.monitoring import ensure_token

    token_file, log = tmp_path / "receiver.token", tmp_path / "alerts.jsonl"
    ensure_token(token_file)
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.targets.local.alert_receiver",
            "--port",
            str(port),
            "--deployment",
            "lm",
            "--state-dir",
            str(tmp_path),
            "--log",
            str(log),
            "--no-events",
            "--token-file",
            str(token_file),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    url = f"http://127.0.0.1:{port}/alerts"
    body = json.dumps(
        {"alerts": [{"status": "firing", "labels": {"alertname": "DynadeployTTFTBudgetBurn"}}]}
    ).encode()

    def post(headers: dict) -> int:
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the receiver did not start"
                time.sleep(0.1)
        assert post({}) == 401
        assert post({"Authorization": "Bearer " + "x" * len(token)}) == 401
        assert post({"Authorization": token}) == 401  # the token without the scheme
        assert not log.exists(), "a refused POST made an event"
        assert post({"Authorization": f"Bearer {token}"}) == 200
        assert [json.loads(line)["event"] for line in log.read_text().splitlines()] == [
            "dynadeploy.alert.DynadeployTTFTBudgetBurn"
        ]
    finally:
        proc.kill()
        proc.wait(timeout=10)
