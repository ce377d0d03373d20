"""What the Helm gateway (runtime/gateways/helm.py) builds on: the release record, the pyhelm3 argv
workaround, running its coroutines from sync code, and parsing what helm prints (times, chart names).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import re
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
DISABLE_VALIDATION_FLAG = "--disable-openapi-validation"
PENDING_STATUSES = frozenset({"pending-install", "pending-upgrade", "pending-rollback"})


@dataclass(frozen=True)
class ReleaseInfo:
    """One revision of a helm release. ``values`` are the user-supplied values (``helm get values``)."""

    name: str
    namespace: str
    revision: int
    status: str
    chart: str
    chart_version: str
    app_version: str | None
    values: dict = field(default_factory=dict, hash=False, repr=False)  # may hold secrets
    updated: dt.datetime | None = None
    description: str = ""

    @property
    def pending(self) -> bool:
        return self.status in PENDING_STATUSES


# ------------------------------------------------------------------------------- pyhelm3 workaround


def rejoin_flags(argv: Iterable[Any], flag: str = DISABLE_VALIDATION_FLAG) -> list[Any]:
    """Undo ``list.extend(flag)``: a run of single characters spelling ``flag`` becomes ``flag``."""
    argv, chars, out, i = list(argv), list(flag), [], 0
    while i < len(argv):
        if argv[i : i + len(chars)] == chars:
            out.append(flag)
            i += len(chars)
        else:
            out.append(argv[i])
            i += 1
    return out


@functools.cache
def fixed_command_class() -> type:
    """pyhelm3's Command with the disable-validation argv fixed (pyhelm3 imported lazily)."""
    from pyhelm3.command import Command

    class FixedCommand(Command):
        async def run(self, command, input=None):
            return await super().run(rejoin_flags(command), input)

    return FixedCommand


# ---------------------------------------------------------------------------------------- helpers


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when a loop is already running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="helm") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _plain(values: dict | None) -> dict:
    """Values as helm stores them (JSON round trip: tuples -> lists, keys -> str)."""
    return json.loads(json.dumps(values or {}, default=str))


_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?")


def parse_time(text: str | None) -> dt.datetime | None:
    """helm's timestamps: RFC 3339 (status/history) or Go's default format (list)."""
    match = _TIME.search(text or "")
    if not match:
        return None
    day, clock, frac, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    return dt.datetime.fromisoformat(f"{day}T{clock}.{(frac or '0')[:6].ljust(6, '0')}{zone}")


def split_chart(chart: str) -> tuple[str, str]:
    """``"dynamo-platform-0.9.1-rc.1"`` -> ``("dynamo-platform", "0.9.1-rc.1")``."""
    match = re.fullmatch(r"(.+)-(v?\d+\.\d+\.\d+\S*)", chart or "")
    return (match.group(1), match.group(2)) if match else (chart or "", "")


def _chart_ref(chart_ref: str | Path) -> str | Path:
    path = Path(chart_ref)
    return path.resolve() if path.exists() else str(chart_ref)
