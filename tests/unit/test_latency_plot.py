"""runtime.render.latency_plot: the smoke/canary latency pictures are well-formed SVG CDFs with the SLA target."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

from runtime.domain.sla import LoadReport, RequestResult
from runtime.render import latency_plot
from runtime.spec import SlaSpec

SVG = "{http://www.w3.org/2000/svg}"


def test_cdf_has_one_step_line_per_series_and_the_target():
    svg = latency_plot.cdf_svg({"stable": [10, 20, 30], "candidate": [15, 45]}, title="TTFT <ms>", target=40)
    root = ET.fromstring(svg)
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 2
    first = [tuple(map(float, p.split(","))) for p in lines[0].get("points").split()]
    assert len(first) == 1 + 2 * 3 and first[-1][1] == latency_plot.PAD_T  # reaches p100 at the top
    assert any(t.text == "SLA 40" for t in root.iter(f"{SVG}text"))
    assert any(t.text == "TTFT <ms>" for t in root.iter(f"{SVG}text"))
    assert latency_plot.cdf_svg({"empty": []}, title="x").startswith("<svg")


def test_markdown_embeds_both_pictures_from_a_load_report():
    ok = [RequestResult(ok=True, ttft_s=0.1 * (i + 1), itl_s=[0.01, 0.03], e2e_s=1.0) for i in range(5)]
    report = LoadReport(results=[*ok, RequestResult(ok=False, error="boom")], wall_s=1.0)
    ttft, itl = latency_plot.report_series(report)
    assert [round(v, 6) for v in ttft] == [100.0, 200.0, 300.0, 400.0, 500.0]
    assert [round(v, 6) for v in itl] == [20.0] * 5
    md = latency_plot.markdown({"revision 1": report}, SlaSpec())
    images = re.findall(r"!\[(.*?)\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", md)
    assert [alt for alt, _ in images] == ["TTFT CDF", "ITL CDF"]
    for _, data in images:
        ET.fromstring(base64.b64decode(data))


def test_a_large_run_stays_a_small_picture():
    svg = latency_plot.cdf_svg({"big": [float(i % 997) for i in range(10000)]}, title="x", target=500)
    assert len(svg) < 20000
    points = ET.fromstring(svg).find(f"{SVG}polyline").get("points").split()
    assert float(points[-1].split(",")[1]) == latency_plot.PAD_T
