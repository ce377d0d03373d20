"""Monitoring on the local target, end to end with real processes: Dynamo 1.6.1 frontend + mocker
workers, Debian's Prometheus and Alertmanager, the alert receiver, a temporary Prefect server.

A worker slowed through the mocker's speed makes the TTFT burn-rate alert fire in Prometheus (the spec
shortens the alert windows to seconds), Alertmanager routes it to the receiver, and it becomes the
Prefect event dynadeploy.alert.DynadeployTTFTBudgetBurn about the target and the serving revision.
Teardown stops Prometheus and Alertmanager with the rest and leaves nothing in the inventory.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
import urllib.parse
import urllib.request

import httpx
import pytest

from flows.deploy import deploy
from runtime.host import ports as hostports
from runtime.render import dashboard, monitoring
from runtime.render import local_monitoring as lm
from runtime.spec import load_spec
from runtime.targets.local import ports as portlib
from runtime.targets.local.backend import LocalBackend
from runtime.targets.local.inventory import marked_pids

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("prometheus") and shutil.which("prometheus-alertmanager")),
        reason="Debian prometheus/prometheus-alertmanager missing: run `make debs`",
    ),
]

# Seconds, not hours: one burn-rate pair over 20s/5s (objective 0.9, burn rate 3: pages when more than 30% of
# requests take longer than the 470 ms TTFT target, an exact bucket boundary). Shared with the bench.
from bench.bench_alert_rollback import FAST_MONITORING, SLA, SLOW  # noqa: E402 - section-local import, kept next to the tests that use it


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def _load(endpoint: str, model: str, stop: threading.Event) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            try:
                with client.stream(
                    "POST",
                    f"{endpoint}/v1/chat/completions",
                    json={
                        "model": model,
                        "messages": [{"role": "user", "content": "hello there"}],
                        "max_tokens": 4,
                        "stream": True,
                    },
                ) as r:
                    for _ in r.iter_bytes():
                        pass
            except httpx.HTTPError:
                time.sleep(0.2)


def _events(api: str, prefix: str) -> list[dict]:
    r = httpx.post(
        f"{api}/events/filter", json={"filter": {"event": {"prefix": [prefix]}}, "limit": 50}, timeout=10
    )
    r.raise_for_status()
    return r.json()["events"]


def _wait(what: str, check, timeout_s: float, interval_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


# Every test deploys through spec_dir (tests/integration/local/conftest.py), which tears each spec's deployment
# down after the test, passed or failed (supervisord, frontend, workers, Prometheus, Alertmanager, receiver);
# the rollback loop tears its own down in alert_rollback_loop's finally.
def test_slowed_worker_fires_ttft_burn_alert_into_a_prefect_event(prefect_api, spec_dir):
    good = spec_dir(
        "mon",
        {"topology": "agg"},
        smoke={"requests": 10, "concurrency": 2, "sla": SLA},
        monitoring=FAST_MONITORING,
    )
    first = deploy(spec=str(good))
    backend = LocalBackend(load_spec(good))
    ports = portlib.load(backend.paths.ports_file)
    prom = f"http://127.0.0.1:{ports['prometheus']}"
    am = f"http://127.0.0.1:{ports['alertmanager']}"

    # Prometheus scrapes the frontend and the worker, with the labels the rules select on.
    def up_targets():
        up = [t for t in _get(f"{prom}/api/v1/targets")["data"]["activeTargets"] if t["health"] == "up"]
        return up if len(up) == 2 else None

    targets = _wait("both targets up", up_targets, 30)
    assert sorted(t["labels"]["role"] for t in targets) == ["frontend", "worker"]
    assert {t["labels"]["deployment"] for t in targets} == {"mon"}
    rules = _get(f"{prom}/api/v1/rules")["data"]["groups"]
    assert {g["name"] for g in rules} == {"dynadeploy-mon-slo-recording", "dynadeploy-mon-alerts"}
    # Every metric the rules use exists on the real 1.6.1 processes (the bucket boundary too).
    for query in (
        f'{monitoring.TTFT}_bucket{{deployment="mon",le="0.47"}}',
        f'{monitoring.ITL}_bucket{{le="0.12"}}',
        f'{monitoring.REQUESTS}{{status="success"}}',
        monitoring.MODEL_READY,
        monitoring.QUEUED,
    ):
        _wait(
            query,
            lambda q=query: _get(f"{prom}/api/v1/query?query={urllib.parse.quote(q)}")["data"]["result"],
            20,
        )

    # The good revision serves fast: no burn alert while it takes traffic.
    stop = threading.Event()
    loader = threading.Thread(target=_load, args=(first["endpoint"], first["model"], stop), daemon=True)
    loader.start()
    try:
        # Asserted on the recorded share of requests over the 470 ms target, not on "no alert after 8 s":
        # the alert pages at 30% over target, which a busy 2-core host can reach with the fast mocker
        # (p90 ~150 ms there). The fast revision keeps the share well under half, and the slowed one
        # (~1 s TTFT) takes it near 1 below; a loaded box moves the first but cannot swap them.
        ratio = monitoring.record_name("ttft", "20s") + '{deployment="mon"}'

        def good_ratio():
            time.sleep(8)  # the long window (20 s) holds mostly traffic of the good revision
            result = _get(f"{prom}/api/v1/query?query={urllib.parse.quote(f'max_over_time({ratio}[8s])')}")
            values = [float(r["value"][1]) for r in result["data"]["result"]]
            return [v for v in values if math.isfinite(v)]  # NaN: no traffic in the window yet

        good_share = _wait("the TTFT ratio of the good revision", good_ratio, 60, 0)[0]
        assert good_share < 0.5, f"{good_share:.0%} of the fast revision's requests took over 470 ms"
        # Every dashboard panel's query parses and returns data in the real Prometheus.
        spec = load_spec(good)
        for panel in dashboard.queries(spec):
            for expr, _ in panel["targets"]:
                query = expr.replace("$__rate_interval", "10s")
                result = _get(f"{prom}/api/v1/query?query={urllib.parse.quote(query)}")
                assert result["status"] == "success", (panel["title"], query)
                assert result["data"]["result"], f"no data for panel {panel['title']!r}: {query}"
        annotation = _get(f"{prom}/api/v1/query?query={urllib.parse.quote(dashboard.annotation_query(spec))}")
        assert annotation["status"] == "success"

        # Revision 2: a slowed worker. Its smoke test fails the TTFT SLA; the revision serves anyway.
        slow = spec_dir(
            "mon",
            {"topology": "agg", "mocker": {"speedup_ratio": SLOW}},
            smoke={"requests": 10, "concurrency": 2, "sla": SLA},
            monitoring=FAST_MONITORING,
        )
        try:
            deploy(spec=str(slow))
        except Exception as exc:
            assert "ttft" in str(exc).lower() or "sla" in str(exc).lower(), exc  # noqa: PT017 - one of many cases in a loop; pytest.raises cannot express 'may raise'
        fired = _wait(
            "the TTFT burn alert firing in Prometheus",
            lambda: [
                a
                for a in _get(f"{prom}/api/v1/alerts")["data"]["alerts"]
                if a["labels"]["alertname"] == "DynadeployTTFTBudgetBurn" and a["state"] == "firing"
            ],
            90,
        )
        assert fired[0]["labels"]["deployment"] == "mon" and fired[0]["labels"]["le"] == "0.47"
        _wait(
            "the alert in Alertmanager",
            lambda: [
                a
                for a in _get(f"{am}/api/v2/alerts")
                if a["labels"]["alertname"] == "DynadeployTTFTBudgetBurn"
            ],
            30,
        )
        events = _wait(
            "the Prefect event", lambda: _events(prefect_api, "dynadeploy.alert.DynadeployTTFTBudgetBurn"), 60
        )
        # `dynadeploy status` shows the live SLO state from the deployment's Prometheus.
        slo = backend.status().slo
        assert "error" not in slo and slo["burn_rates"]["ttft 5s"] > 3
        assert (
            slo["burn_rates"]["ttft 20s"] * 0.1 > good_share
        )  # the slowed revision burns more than the good one did
        assert {"name": "DynadeployTTFTBudgetBurn", "state": "firing", "slo": "ttft", "window": "20s"} in [
            {k: a[k] for k in ("name", "state", "slo", "window")} for a in slo["alerts"]
        ]
    finally:
        stop.set()
        loader.join(timeout=30)
    ev = events[0]
    assert ev["event"] == "dynadeploy.alert.DynadeployTTFTBudgetBurn"
    assert ev["resource"]["prefect.resource.id"] == "dynadeploy.target.mon"
    assert ev["resource"]["dynadeploy.alert.slo"] == "ttft"
    assert [r["prefect.resource.id"] for r in ev["related"]] == ["dynadeploy.revision.mon.2"]

    # Teardown takes Prometheus, Alertmanager and the receiver with it; nothing is left.
    result = backend.teardown()
    assert result.leftovers == []
    assert marked_pids(backend.paths) == []
    for name in lm.PROGRAMS:
        assert not hostports.port_is_listening(ports[name])


def test_slo_alert_rolls_back_to_the_last_good_revision_through_the_automation(prefect_api, tmp_path):
    """The full loop: alert -> Prefect event -> automation -> rollback deployment (a real runner) ->
    revision 1's spec serves again as revision 3 (bench/bench_alert_rollback.py times the same loop)."""
    from prefect import get_client

    from bench.bench_alert_rollback import alert_rollback_loop
    from runtime.targets.local.paths import DeploymentPaths

    result = alert_rollback_loop(tmp_path, prefect_api)
    print(json.dumps(result, indent=1))
    assert result["slow_revision_smoke"].startswith("failed") and result["revision_2_serving"] == "serving"
    assert result["event_sent"] is True
    assert result["event_related"][0].startswith("prefect.deployment.")
    assert result["event_related"][1] == "dynadeploy.revision.monloop.2"
    assert result["restored_revision"] == 3 and result["restored_speedup"] == 1.0
    assert [auto for _, state, auto in result["rollback_runs"] if state == "Completed"] == [True]
    assert marked_pids(DeploymentPaths.for_deployment("monloop", str(tmp_path / "home"))) == []
    # The loop deleted its automations: left on the session's server, any later test's alert would start a rollback.
    with get_client(sync_client=True) as client:
        left = {str(a.id) for a in client.read_automations()}
    assert result["automations"] and not left & set(result["automations"])


def test_etcd_discovery_is_scraped_too_and_turning_monitoring_off_stops_it(prefect_api, spec_dir):
    path = spec_dir(
        "monetcd",
        {"topology": "agg"},
        target={"discovery": "etcd"},
        smoke={"requests": 4, "concurrency": 2},
        monitoring={
            "scrape_interval": "1s",
            "evaluation_interval": "1s",
            "slo": {"burn_alerts": [{"long": "1m", "short": "10s", "burn_rate": 5}]},
        },
    )
    deploy(spec=str(path))
    backend = LocalBackend(load_spec(path))
    ports = portlib.load(backend.paths.ports_file)
    prom = f"http://127.0.0.1:{ports['prometheus']}"

    def up_roles():
        active = _get(f"{prom}/api/v1/targets")["data"]["activeTargets"]
        roles = sorted(t["labels"]["role"] for t in active if t["health"] == "up")
        return roles if roles == ["etcd", "frontend", "worker"] else None

    _wait("etcd, frontend and worker scraped", up_roles, 40)
    # No HTTP lifecycle API for every user of the host: a changed config reaches the running Prometheus by
    # SIGHUP through the deployment's supervisord.
    quit_ = httpx.post(f"{prom}/-/quit", timeout=5)
    assert quit_.status_code == 403 and "lifecycle" in quit_.text.lower(), quit_.text
    spec_dir(
        "monetcd",
        {"topology": "agg"},
        target={"discovery": "etcd"},
        smoke={"requests": 4, "concurrency": 2},
        monitoring={
            "scrape_interval": "1s",
            "evaluation_interval": "2s",
            "slo": {"burn_alerts": [{"long": "1m", "short": "10s", "burn_rate": 5}]},
        },
    )
    deploy(spec=str(path))
    assert portlib.load(backend.paths.ports_file)["prometheus"] == ports["prometheus"]
    _wait(
        "the new rule interval in Prometheus",
        lambda: {g["interval"] for g in _get(f"{prom}/api/v1/rules")["data"]["groups"]} == {2},
        30,
    )
    # The same spec without monitoring: the three programs go, the graph keeps serving.
    spec_dir(
        "monetcd", {"topology": "agg"}, target={"discovery": "etcd"}, smoke={"requests": 4, "concurrency": 2}
    )
    deploy(spec=str(path))
    running = backend.supervisor.processes()
    assert not set(lm.PROGRAMS) & set(running) and not lm.files(backend.paths.root).root.exists()
    assert not hostports.port_is_listening(ports["prometheus"])
    assert not set(lm.PORT_NAMES) & set(portlib.load(backend.paths.ports_file)), "their ports are forgotten"
    assert backend.teardown().leftovers == []
