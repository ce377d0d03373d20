"""runtime.render.monitoring + runtime.spec.monitoring: the rules rendered from a spec's SLA pass
`promtool check rules`, and `promtool test rules` proves on synthetic series that each alert fires when
it should and stays quiet when it should not. promtool is Debian's (package prometheus, `make debs`)."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.domain import naming
from runtime.errors import SpecError
from runtime.render import monitoring
from runtime.spec import API_VERSION, parse_spec

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: run `make debs` (Debian prometheus)"
)
D = "mon"
BASE: dict[str, Any] = {"apiVersion": API_VERSION, "name": D, "monitoring": {}}


def spec(**monitoring_fields):
    data = copy.deepcopy(BASE)
    data["monitoring"].update(monitoring_fields)
    return parse_spec(data)


def issues(data) -> list[tuple[str, str, str]]:
    with pytest.raises(SpecError) as err:
        parse_spec(data)
    return [(i.path, i.problem, i.fix) for i in err.value.issues]


# --- spec ------------------------------------------------------------------------------------------


def test_no_monitoring_section_keeps_the_spec_hash():
    plain = parse_spec({"apiVersion": API_VERSION, "name": D})
    assert plain.monitoring is None
    assert "monitoring" not in plain.canonical_dict()
    assert naming.spec_hash(plain) != naming.spec_hash(spec())
    assert monitoring.rule_groups(plain) == {"groups": []}


def test_defaults_measure_the_default_sla_at_the_next_bucket_up():
    s = spec()
    assert s.monitoring.prometheus is True
    targets = monitoring.slo_targets(s)
    assert targets["ttft"]["le"] == "2.2"  # 2000 ms: the boundaries are 1 s and 2.2 s (10% looser)
    assert targets["itl"]["le"] == "0.21"  # 200 ms -> 210 ms
    assert [(a.long, a.short, a.burn_rate) for a in s.monitoring.slo.burn_alerts] == [
        ("1h", "5m", 5),
        ("6h", "30m", 3),
    ]
    assert s.monitoring.slo.latency_objective == 0.9  # the SLA's percentile: p90


def test_exact_boundary_is_used_as_is_and_tolerance_zero_refuses_rounding():
    s = parse_spec({**BASE, "smoke": {"sla": {"ttft_p90_ms": 1000, "itl_p90_ms": 120}}})
    assert (monitoring.slo_targets(s)["ttft"]["le"], monitoring.slo_targets(s)["itl"]["le"]) == ("1", "0.12")
    found = issues({**BASE, "monitoring": {"slo": {"bucket_tolerance": 0}}})
    paths = [p for p, _, _ in found]
    assert paths == ["smoke.sla.ttft_p90_ms", "smoke.sla.itl_p90_ms"]
    _, problem, fix = found[0]
    assert "no bucket boundary at 2000 ms" in problem and "1000 ms and 2200 ms" in problem
    assert "set smoke.sla.ttft_p90_ms to a bucket boundary (1000 or 2200)" in fix
    assert "bucket_tolerance to 0.1" in fix


def test_a_target_far_from_any_boundary_is_refused_with_the_boundaries_around_it():
    ((path, problem, fix),) = issues({**BASE, "smoke": {"sla": {"ttft_p90_ms": 1500}}})
    assert path == "smoke.sla.ttft_p90_ms"
    assert "1000 ms and 2200 ms" in problem
    assert "to a bucket boundary (1000 or 2200)" in fix and "bucket_tolerance to 0.47" in fix


@pytest.mark.parametrize(
    ("monitoring_fields", "path", "words"),
    [
        (
            {"slo": {"burn_alerts": [{"long": "5m", "short": "1h", "burn_rate": 2}]}},
            "monitoring.slo.burn_alerts[0].short",
            "not shorter",
        ),
        ({"slo": {"latency_objective": 0.75}}, "monitoring.slo.burn_alerts[0].burn_rate", "could never fire"),
        ({"slo": {"window": "2h"}}, "monitoring.slo.burn_alerts[1].long", "longer than the SLO window"),
        ({"scrape_interval": "3m"}, "monitoring.slo.burn_alerts[0].short", "fewer than four scrapes"),
        # 4x, not 2x: a 5m window at a 1m30s scrape holds only three scrapes
        ({"scrape_interval": "90s"}, "monitoring.slo.burn_alerts[0].short", "fewer than four scrapes"),
        ({"scrape_interval": "15 s"}, "monitoring.scrape_interval", "Prometheus duration"),
        ({"prometheus": "yes"}, "monitoring.prometheus", ""),
    ],
)
def test_bad_monitoring_sections_fail_with_field_and_fix(monitoring_fields, path, words):
    found = issues({**BASE, "monitoring": monitoring_fields})
    assert path in [p for p, _, _ in found], found
    problem, fix = next((pr, fx) for p, pr, fx in found if p == path)
    assert words in problem and fix


# --- promtool --------------------------------------------------------------------------------------


def write_rules(tmp_path: Path, s) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(monitoring.rule_groups(s), sort_keys=False))
    return path


@needs_promtool
def test_promtool_check_rules_accepts_every_rendered_rule(tmp_path):
    for s in (
        spec(),
        parse_spec({**BASE, "smoke": {"sla": {"ttft_p90_ms": 1000, "itl_p90_ms": 20}}}),
        spec(slo={"burn_alerts": [{"long": "1m", "short": "10s", "burn_rate": 2}]}, scrape_interval="1s"),
    ):
        out = subprocess.run(
            [PROMTOOL, "check", "rules", str(write_rules(tmp_path, s))],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "SUCCESS" in out.stdout


def _alert(s, name: str, **labels) -> dict:
    """The expected alert as promtool reports it: the rule's labels and annotations, plus `deployment`."""
    for rule in monitoring.alert_rules(s):
        if rule.get("alert") == name and all(rule["labels"].get(k) == v for k, v in labels.items()):
            return {
                "exp_labels": {**rule["labels"], "alertname": name} | {"alertname": name},
                "exp_annotations": rule["annotations"],
            }
    raise AssertionError(f"no rule {name} {labels}")


def _strip_alertname(alerts: list[dict]) -> list[dict]:
    for a in alerts:
        a["exp_labels"].pop("alertname")
    return alerts


FE = f'deployment="{D}",role="frontend",model="tiny-mock"'
WK = f'deployment="{D}",role="worker",revision="1"'


def _latency_series(metric: str, le: str, total_per_min: int, good_per_min: int) -> list[dict]:
    return [
        {"series": f"{metric}_count{{{FE}}}", "values": f"0+{total_per_min}x500"},
        {"series": f'{metric}_bucket{{{FE},le="{le}"}}', "values": f"0+{good_per_min}x500"},
        {"series": f'{metric}_bucket{{{FE},le="+Inf"}}', "values": f"0+{total_per_min}x500"},
    ]


def _healthy() -> list[dict]:
    return [
        {"series": f"up{{{FE}}}", "values": "1x500"},
        {"series": f"up{{{WK}}}", "values": "1x500"},
        {"series": f"{monitoring.MODEL_READY}{{{FE}}}", "values": "1x500"},
        {"series": f"{monitoring.QUEUED}{{{FE}}}", "values": "0x500"},
        {"series": f'{monitoring.REQUESTS}{{{FE},status="success"}}', "values": "0+100x500"},
    ]


def _run_promtool_tests(tmp_path: Path, s, tests: list[dict]) -> None:
    rules = write_rules(tmp_path, s)
    unit = {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(unit, sort_keys=False))
    out = subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_promtool_ttft_burn_fires_on_both_window_pairs_and_nothing_else(tmp_path):
    s = spec()
    ttft = monitoring.TTFT
    # Three quarters of the requests over 2.2 s: 75% > 5x and > 3x a 10% budget, on every window.
    series = (
        _healthy() + _latency_series(ttft, "2.2", 60, 15) + _latency_series(monitoring.ITL, "0.21", 600, 600)
    )
    fast = _alert(s, "DynadeployTTFTBudgetBurn", long_window="1h")
    slow = _alert(s, "DynadeployTTFTBudgetBurn", long_window="6h")
    _run_promtool_tests(
        tmp_path,
        s,
        [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "40m",
                        "alertname": "DynadeployTTFTBudgetBurn",
                        "exp_alerts": _strip_alertname([fast, slow]),
                    },
                    {"eval_time": "40m", "alertname": "DynadeployITLBudgetBurn", "exp_alerts": []},
                    {"eval_time": "40m", "alertname": "DynadeployErrorBudgetBurn", "exp_alerts": []},
                    {"eval_time": "40m", "alertname": "DynadeployModelNotReady", "exp_alerts": []},
                    {"eval_time": "40m", "alertname": "DynadeployNoWorkers", "exp_alerts": []},
                    {"eval_time": "40m", "alertname": "DynadeployFrontendDown", "exp_alerts": []},
                    {"eval_time": "40m", "alertname": "DynadeployQueueGrowing", "exp_alerts": []},
                ],
                "promql_expr_test": [
                    {
                        "expr": f'dynadeploy:ttft_over_target:ratio_rate5m{{deployment="{D}"}}',
                        "eval_time": "40m",
                        "exp_samples": [
                            {
                                "labels": f'dynadeploy:ttft_over_target:ratio_rate5m{{deployment="{D}"}}',
                                "value": 0.75,
                            }
                        ],
                    }
                ],
            }
        ],
    )


@needs_promtool
def test_promtool_latency_within_budget_and_short_blips_do_not_fire(tmp_path):
    s = spec()
    # 9.5% over target: under the 10% budget at any burn rate >= 1 (the SLA's p90 is met: no page).
    series = (
        _healthy()
        + _latency_series(monitoring.TTFT, "2.2", 200, 181)
        + _latency_series(monitoring.ITL, "0.21", 200, 181)
    )
    # A blip where every request is slow for ~6 minutes after 6 hours of good traffic: the 5m (100%) and 30m
    # (20%) windows burn, but the 1h window stays at 10% < 50% and the 6h one at 1.7% < 30%: no page.
    blip = [
        {"series": f"{monitoring.TTFT}_count{{{FE}}}", "values": "0+60x400"},
        {"series": f'{monitoring.TTFT}_bucket{{{FE},le="2.2"}}', "values": "0+60x360 21600x5 21600+60x35"},
    ]
    _run_promtool_tests(
        tmp_path,
        s,
        [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": t, "alertname": name, "exp_alerts": []}
                    for t in ("10m", "2h", "7h")
                    for name in (
                        "DynadeployTTFTBudgetBurn",
                        "DynadeployITLBudgetBurn",
                        "DynadeployErrorBudgetBurn",
                    )
                ],
            },
            {
                "interval": "1m",
                "input_series": _healthy() + blip,
                "alert_rule_test": [
                    {"eval_time": "366m", "alertname": "DynadeployTTFTBudgetBurn", "exp_alerts": []}
                ],
            },
        ],
    )


@needs_promtool
def test_promtool_error_burn_fires_on_failed_requests(tmp_path):
    s = spec()
    series = [x for x in _healthy() if monitoring.REQUESTS not in x["series"]] + [
        {"series": f'{monitoring.REQUESTS}{{{FE},status="success"}}', "values": "0+95x500"},
        {"series": f'{monitoring.REQUESTS}{{{FE},status="error"}}', "values": "0+5x500"},
    ]
    _run_promtool_tests(
        tmp_path,
        s,
        [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "40m",
                        "alertname": "DynadeployErrorBudgetBurn",
                        "exp_alerts": _strip_alertname(
                            [
                                _alert(s, "DynadeployErrorBudgetBurn", long_window="1h"),
                                _alert(s, "DynadeployErrorBudgetBurn", long_window="6h"),
                            ]
                        ),
                    },
                ],
            }
        ],
    )


@needs_promtool
def test_promtool_availability_rules_catch_absent_series(tmp_path):
    s = spec()
    ready_gone = [x for x in _healthy() if monitoring.MODEL_READY not in x["series"]] + [
        # registered for 10 minutes, then the series vanishes (what Dynamo 1.6.1 does when the worker goes)
        {"series": f"{monitoring.MODEL_READY}{{{FE}}}", "values": "1x10"}
    ]
    workers_down = [x for x in _healthy() if 'role="worker"' not in x["series"]] + [
        {"series": f"up{{{WK}}}", "values": "1x10 0x100"}
    ]
    avail = ("DynadeployModelNotReady", "DynadeployNoWorkers", "DynadeployFrontendDown")

    def expect(name):
        a = _alert(s, name)
        a["exp_labels"].pop("alertname")
        return [a]

    _run_promtool_tests(
        tmp_path,
        s,
        [
            {
                "interval": "1m",
                "input_series": ready_gone,
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "DynadeployModelNotReady", "exp_alerts": []},
                    {
                        "eval_time": "20m",
                        "alertname": "DynadeployModelNotReady",
                        "exp_alerts": expect("DynadeployModelNotReady"),
                    },
                    {"eval_time": "20m", "alertname": "DynadeployNoWorkers", "exp_alerts": []},
                ],
            },
            {
                "interval": "1m",
                "input_series": workers_down,
                "alert_rule_test": [
                    {
                        "eval_time": "20m",
                        "alertname": "DynadeployNoWorkers",
                        "exp_alerts": expect("DynadeployNoWorkers"),
                    },
                    {"eval_time": "20m", "alertname": "DynadeployFrontendDown", "exp_alerts": []},
                ],
            },
            # the deployment was never scraped (only another one was): every availability alert fires through absent()
            {
                "interval": "1m",
                "input_series": [{"series": 'up{deployment="other",role="frontend"}', "values": "1x100"}],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": n, "exp_alerts": expect(n)} for n in avail
                ],
            },
            {
                "interval": "1m",
                "input_series": _healthy(),
                "alert_rule_test": [{"eval_time": "30m", "alertname": n, "exp_alerts": []} for n in avail],
            },
        ],
    )


@needs_promtool
def test_promtool_queue_growth_fires_only_when_long_and_growing(tmp_path):
    s = spec(queue_max=16, queue_for="5m")
    growing = [x for x in _healthy() if monitoring.QUEUED not in x["series"]] + [
        {"series": f"{monitoring.QUEUED}{{{FE}}}", "values": "0+2x100"}
    ]
    steady = [x for x in _healthy() if monitoring.QUEUED not in x["series"]] + [
        {"series": f"{monitoring.QUEUED}{{{FE}}}", "values": "40x100"}
    ]
    a = _alert(s, "DynadeployQueueGrowing")
    a["exp_labels"].pop("alertname")
    _run_promtool_tests(
        tmp_path,
        s,
        [
            {
                "interval": "1m",
                "input_series": growing,
                "alert_rule_test": [
                    {
                        "eval_time": "5m",
                        "alertname": "DynadeployQueueGrowing",
                        "exp_alerts": [],
                    },  # 10 queued, under 16
                    {"eval_time": "30m", "alertname": "DynadeployQueueGrowing", "exp_alerts": [a]},
                ],
            },
            {
                "interval": "1m",
                "input_series": steady,
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": "DynadeployQueueGrowing", "exp_alerts": []}
                ],
            },
        ],
    )


@needs_promtool
def test_promtool_on_kubernetes_the_same_name_in_another_namespace_does_not_mix(tmp_path):
    """A cluster-wide Prometheus scrapes `mon` in namespace serving (fast) and `mon` in namespace other
    (every request slow): serving's rules see only serving's series, so nothing fires and its ratio is 0."""
    s = parse_spec({**BASE, "target": {"kind": "kube", "namespace": "serving"}})
    assert all('namespace="serving"' in r["expr"] for r in monitoring.recording_rules(s))
    assert 'namespace="' not in yaml.safe_dump(monitoring.rule_groups(spec()))  # local: no namespace label

    def series(ns: str, good_per_min: int) -> list[dict]:
        fe = f'deployment="{D}",namespace="{ns}",role="frontend",model="tiny-mock"'
        wk = f'deployment="{D}",namespace="{ns}",role="worker",revision="1"'
        return [
            {"series": f"up{{{fe}}}", "values": "1x100"},
            {"series": f"up{{{wk}}}", "values": "1x100"},
            {"series": f"{monitoring.MODEL_READY}{{{fe}}}", "values": "1x100"},
            {"series": f"{monitoring.QUEUED}{{{fe}}}", "values": "0x100"},
            {"series": f'{monitoring.REQUESTS}{{{fe},status="success"}}', "values": "0+60x100"},
            {"series": f"{monitoring.TTFT}_count{{{fe}}}", "values": "0+60x100"},
            {"series": f'{monitoring.TTFT}_bucket{{{fe},le="2.2"}}', "values": f"0+{good_per_min}x100"},
        ]

    record = f'dynadeploy:ttft_over_target:ratio_rate5m{{deployment="{D}",namespace="serving"}}'
    _run_promtool_tests(
        tmp_path,
        s,
        [
            {
                "interval": "1m",
                "input_series": series("serving", 60) + series("other", 0),
                "alert_rule_test": [
                    {"eval_time": "40m", "alertname": "DynadeployTTFTBudgetBurn", "exp_alerts": []}
                ],
                "promql_expr_test": [
                    {"expr": record, "eval_time": "40m", "exp_samples": [{"labels": record, "value": 0}]}
                ],
            }
        ],
    )
