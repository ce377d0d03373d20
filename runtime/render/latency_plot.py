"""Pure: latency distributions as pictures (SVG CDFs), for the smoke and canary Prefect artifacts.

People look, not read: a CDF of TTFT and one of ITL (per-request mean), one line per series (e.g. a
revision, or stable vs candidate), with the SLA target as a dashed vertical line, so a shifted or
long-tailed distribution shows at a glance. No plotting library: a few hundred bytes of SVG, embedded in
the markdown artifact as a data: URI image.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 560, 260, 56, 16, 28, 40
MAX_STEPS = 300
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def cdf_svg(
    series: Mapping[str, Sequence[float]], *, title: str, unit: str = "ms", target: float | None = None
) -> str:
    """An SVG CDF of each series (values in ``unit``); ``target`` draws a dashed line at the SLA."""
    values = [v for vs in series.values() for v in vs]
    x_max = _nice_max(max([*values, target or 0, 0.0]) * 1.05)
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(v: float) -> float:
        return PAD_L + pw * min(v, x_max) / x_max

    def y(p: float) -> float:
        return PAD_T + ph * (1 - p)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{PAD_L}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{PAD_L}" y1="{y(0)}" x2="{PAD_L + pw}" y2="{y(0)}" stroke="#444"/>',
        f'<line x1="{PAD_L}" y1="{y(0)}" x2="{PAD_L}" y2="{y(1)}" stroke="#444"/>',
    ]
    for i in range(6):
        v = x_max * i / 5
        parts.append(f'<text x="{x(v):.1f}" y="{y(0) + 14}" text-anchor="middle">{v:g}</text>')
    parts.append(f'<text x="{PAD_L + pw / 2}" y="{H - 6}" text-anchor="middle">{escape(unit)}</text>')
    for p in (0.5, 0.9, 0.99, 1.0):
        parts.append(f'<line x1="{PAD_L}" y1="{y(p):.1f}" x2="{PAD_L + pw}" y2="{y(p):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{PAD_L - 4}" y="{y(p) + 4:.1f}" text-anchor="end">p{p * 100:g}</text>')
    if target is not None:
        parts.append(
            f'<line x1="{x(target):.1f}" y1="{y(0)}" x2="{x(target):.1f}" y2="{y(1)}" stroke="#888" '
            f'stroke-dasharray="4 3"/><text x="{x(target) + 3:.1f}" y="{y(1) + 10}" fill="#666">'
            f"SLA {target:g}</text>"
        )
    for i, (label, vs) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        ordered = sorted(vs)
        n = len(ordered)
        if n:
            pts = [f"{x(0):.1f},{y(0):.1f}"]
            # A step function, up by 1/n at each sample; past MAX_STEPS samples, every (n/MAX_STEPS)-th
            # order statistic, so a 10000-request run stays a small picture.
            stride = max(1, math.ceil(n / MAX_STEPS))
            for k in range(0, n, stride):
                v, top = ordered[min(k + stride, n) - 1], min(k + stride, n)
                pts += [f"{x(v):.1f},{y(k / n):.1f}", f"{x(v):.1f},{y(top / n):.1f}"]
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{" ".join(pts)}"/>'
            )
        parts.append(
            f'<text x="{PAD_L + pw - 4}" y="{y(0.08) - 14 * i:.1f}" text-anchor="end" fill="{color}">'
            f"{escape(label)} (n={n})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def report_series(report) -> tuple[list[float], list[float]]:
    """TTFT and per-request mean ITL, in ms, of the successful requests of a runtime.domain.sla.LoadReport."""
    ok = [r for r in report.results if r.ok]
    return (
        [r.ttft_s * 1000 for r in ok if r.ttft_s is not None],
        [r.mean_itl_s * 1000 for r in ok if r.mean_itl_s is not None],
    )


def markdown(reports: Mapping[str, object], sla) -> str:
    """Markdown with the TTFT and ITL CDF pictures of one or more load reports (label -> LoadReport)."""
    ttft = {label: report_series(r)[0] for label, r in reports.items()}
    itl = {label: report_series(r)[1] for label, r in reports.items()}
    ttft_svg = cdf_svg(ttft, title="Time to first token (CDF)", target=sla.ttft_p90_ms)
    itl_svg = cdf_svg(itl, title="Inter-token latency, per-request mean (CDF)", target=sla.itl_p90_ms)
    return "\n\n".join(
        [
            "## Latency distributions",
            f"![TTFT CDF]({data_uri(ttft_svg)})",
            f"![ITL CDF]({data_uri(itl_svg)})",
        ]
    )
