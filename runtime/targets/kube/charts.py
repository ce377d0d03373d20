"""Where a Helm chart comes from: its published https source, or a local directory (DYNADEPLOY_CHART_DIR).

The Dynamo platform chart is an NGC ``.tgz`` URL (the OCI form in Dynamo's docs 404s) and the GPU
operator chart lives in NVIDIA's Helm repository. Machines that cannot reach them (air-gapped clusters,
the test simulator) set ``DYNADEPLOY_CHART_DIR`` to a directory of unpacked charts: for chart ``<name>``
at ``<version>`` the first of ``<dir>/<name>-<version>/`` and ``<dir>/<name>/`` holding a Chart.yaml wins;
anything not found there still comes from its https source. tests/harness/charts/dynamo-platform/README.md
documents the stand-in charts the tests use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime import settings

CHART_DIR_ENV = settings.CHART_DIR


@dataclass(frozen=True)
class ChartSource:
    """What to hand the Helm gateway: ``ref`` (URL, chart name or local path), ``repo``, ``version``."""

    ref: str
    repo: str | None
    version: str | None
    local: bool

    def kwargs(self) -> dict:
        return {"repo": self.repo, "version": self.version}


def chart_source(chart) -> ChartSource:
    """The source of a ``runtime.render.ChartRef``: a local directory when configured, else https."""
    root = settings.chart_dir()
    if root:
        for candidate in (Path(root) / f"{chart.name}-{chart.version}", Path(root) / chart.name):
            if (candidate / "Chart.yaml").is_file():
                return ChartSource(str(candidate.resolve()), None, None, True)
    if chart.repo:
        return ChartSource(chart.name, chart.repo, chart.version, False)
    return ChartSource(chart.url, None, None, False)
