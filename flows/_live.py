"""The CLI's live view of a flow run: one line per stage, drawn while the flow runs in this thread.

The stages come from the ``dynadeploy.progress`` log records flows/_progress.py emits (the same records the
Prefect UI shows). rich is imported only when the view is drawn, so ``--output json`` and the CLI's start
stay light.
"""

from __future__ import annotations

import logging
import time


def with_progress(run, *, show: bool, title: str):
    """Run ``run`` (in this thread) while a Live view draws one line per stage from the
    dynadeploy.progress records; Live redraws from its own thread."""
    if not show:
        return run()
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    stages: dict[str, dict] = {}
    started = time.monotonic()
    icons = {"start": "[yellow]…[/]", "done": "[green]✓[/]", "failed": "[red]✗[/]"}

    def render() -> Table:
        table = Table(title=title, show_header=False, box=None, padding=(0, 1))
        for name, st in list(stages.items()):
            secs = st["seconds"] if st.get("seconds") is not None else time.monotonic() - st["t0"]
            table.add_row(icons.get(st["event"], "?"), name, f"{secs:.1f}s", st.get("detail") or "")
        table.add_row("", "", f"[dim]{time.monotonic() - started:.1f}s total[/]", "")
        return table

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            info = getattr(record, "dynadeploy", None)
            if info and info.get("live"):
                console.print(f"{info['stage']}: {info['detail']}", soft_wrap=True)
            if info:
                prev = stages.get(info["stage"], {"t0": time.monotonic()})
                stages[info["stage"]] = prev | info

    handler = Handler()
    progress = logging.getLogger("dynadeploy.progress")
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    progress.propagate = False
    console = Console(stderr=True)
    try:
        with Live(get_renderable=render, console=console, refresh_per_second=8):
            return run()
    finally:
        progress.removeHandler(handler)
        console.print()  # Live leaves the cursor on its last line
