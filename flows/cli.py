"""`dynadeploy`: the command line front of the same Prefect flows that prefect.yaml deploys.

    dynadeploy deploy SPEC [--output json]      deploy or converge; prints the endpoint
    dynadeploy status SPEC [--output json]      revisions and live health
    dynadeploy teardown SPEC [--delete-model-cache]
    dynadeploy history SPEC                     the revision ledger
    dynadeploy diff SPEC A B                    what differs between revisions A and B
    dynadeploy rollback SPEC [--revision N] [--yes]
    dynadeploy server start|stop                the local Prefect server the CLI uses

Flows report to PREFECT_API_URL when it is set, else to a local Prefect server this CLI starts once
and reuses (DYNADEPLOY_PREFECT=ephemeral runs a throwaway in-process server instead). A failure
prints one line, `error: <reason> (fix: ...)`, and exits 1; a bad spec exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from runtime.errors import DynadeployError, SpecError

    try:
        return args.func(args)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(exc.details(), file=sys.stderr)
        return 2
    except DynadeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.verbose:
            raise
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dynadeploy", description=__doc__.split("\n\n")[0])
    p.add_argument("-v", "--verbose", action="store_true", help="also show Prefect's own log lines")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("deploy", help="deploy or converge a spec, then smoke-test it")
    d.add_argument("spec")
    d.add_argument("--reason", default="deploy")
    d.add_argument("--output", choices=["text", "json"], default="text")
    d.set_defaults(func=_deploy)

    s = sub.add_parser("status", help="revisions and live health of a deployment")
    s.add_argument("spec")
    s.add_argument("--output", choices=["text", "json"], default="text")
    s.set_defaults(func=_status)

    t = sub.add_parser("teardown", help="stop and remove a deployment, then check nothing is left")
    t.add_argument("spec")
    t.add_argument("--delete-model-cache", action="store_true")
    t.add_argument("--output", choices=["text", "json"], default="text")
    t.set_defaults(func=_teardown)

    h = sub.add_parser("history", help="the revision ledger of a deployment")
    h.add_argument("spec")
    h.add_argument("--output", choices=["text", "json"], default="text")
    h.set_defaults(func=_history)

    df = sub.add_parser("diff", help="what differs between two recorded revisions")
    df.add_argument("spec")
    df.add_argument("a", type=int)
    df.add_argument("b", type=int)
    df.add_argument("--output", choices=["text", "json"], default="text")
    df.set_defaults(func=_diff)

    rb = sub.add_parser("rollback", help="restore a recorded revision (default: the last good one)")
    rb.add_argument("spec")
    rb.add_argument("--revision", type=int, default=None)
    rb.add_argument("--reason", default="rollback from the CLI")
    rb.add_argument("--yes", action="store_true", help="skip the approval pause (otherwise approve in the Prefect UI)")
    rb.add_argument("--output", choices=["text", "json"], default="text")
    rb.set_defaults(func=_rollback)

    sv = sub.add_parser("server", help="the local Prefect server used when PREFECT_API_URL is unset")
    sv.add_argument("action", choices=["start", "stop", "url"])
    sv.set_defaults(func=_server)
    return p


# -- commands ---------------------------------------------------------------------------------
def _deploy(args) -> int:
    from runtime.spec import load_spec

    spec = load_spec(args.spec)  # validate before anything starts
    _prepare_prefect(quiet=args.output == "json", verbose=args.verbose)
    from flows.deploy import deploy

    result = _with_progress(lambda: deploy(spec=_spec_param(args.spec, spec), reason=args.reason),
                            show=args.output == "text", title=f"deploy {spec.name} ({spec.target.kind})")
    if args.output == "json":
        out = {k: result[k] for k in ("target", "endpoint", "model", "revision", "smoke")}
        print(json.dumps(out, indent=2))
    else:
        sm = result["smoke"]
        print(f"{spec.name} is serving {result['model']} at {result['endpoint']} (revision {result['revision']}, "
              f"engine {result['engine']})")
        print(f"smoke: {sm['requests']} requests, {sm['errors']} errors, ttft p90 {sm['ttft_ms']['p90']:.0f} ms, "
              f"itl p90 {sm['itl_ms']['p90']:.1f} ms, {sm['tokens_per_s']:.0f} tokens/s")
        print("try it:\n  curl -s " + result["endpoint"] + "/v1/chat/completions -H 'Content-Type: application/json' \\\n"
              f"    -d '{{\"model\": \"{result['model']}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}], "
              "\"max_tokens\": 16}'")
    return 0


def _status(args) -> int:
    import tasks.secrets  # noqa: F401 - registers how target.credentials blocks are read
    from runtime.backends import backend_for
    from runtime.spec import load_spec

    status = backend_for(load_spec(args.spec)).status()
    # A degraded deployment (e.g. its supervisor gone, orphans left) must not read as healthy: it
    # exits 3 like one serving nothing, in both output forms.
    problems = status.get("problems") or []
    if args.output == "json":
        print(json.dumps(status, indent=2))
        return 3 if problems else 0
    for problem in problems:
        print(f"DEGRADED: {problem}")
    print(f"{status['name']} ({status['target']}) endpoint {status['endpoint']}")
    print(f"models served: {status['models'] or 'none'}; workers discovered: {status['workers_discovered']}")
    for name, p in sorted(status["processes"].items()):
        print(f"  {name:<16} {p['state']:<9} pid {p['pid']:<7} up {p['uptime_s']}s")
    _print_revisions(status["revisions"])
    if status.get("slo"):  # a deployment with monitoring: live burn rates and alerts from its Prometheus
        from runtime.slo_status import lines

        print("\n".join(lines(status["slo"])))
    return 0 if status["models"] and not problems else 3


def _history(args) -> int:
    import tasks.secrets  # noqa: F401 - registers how target.credentials blocks are read
    from runtime.backends import backend_for
    from runtime.spec import load_spec

    revisions = backend_for(load_spec(args.spec)).status()["revisions"]
    if args.output == "json":
        print(json.dumps(revisions, indent=2))
    else:
        _print_revisions(revisions)
    return 0


def _diff(args) -> int:
    import tasks.secrets  # noqa: F401 - registers how target.credentials blocks are read
    from runtime import revisions as revlib
    from runtime.backends import backend_for
    from runtime.errors import PermanentError
    from runtime.spec import load_spec

    by_number = {r.number: r for r in backend_for(load_spec(args.spec)).revisions()}
    missing = [n for n in (args.a, args.b) if n not in by_number]
    if missing:
        raise PermanentError(f"revision(s) {missing} not in the ledger", hint="see `dynadeploy history SPEC`")
    rows = revlib.describe_changes(by_number[args.a], by_number[args.b])
    if args.output == "json":
        print(json.dumps(rows, indent=2, default=str))
    elif not rows:
        print(f"revisions {args.a} and {args.b} are the same")
    else:
        width = max(len(r["field"]) for r in rows)
        print(f"{'field':<{width}}  {'revision ' + str(args.a):<30}  revision {args.b}")
        for r in rows:
            print(f"{r['field']:<{width}}  {r['now']!s:<30}  {r['after']}")
    return 0


def _rollback(args) -> int:
    from runtime.spec import load_spec

    spec = load_spec(args.spec)
    _prepare_prefect(quiet=args.output == "json", verbose=args.verbose)
    from flows.rollback import rollback

    if not args.yes and args.output == "text":
        print("waiting for approval in the Prefect UI (the run pauses with an approve/note form) ...",
              file=sys.stderr)
    result = _with_progress(lambda: rollback(spec=_spec_param(args.spec, spec), revision=args.revision,
                                             reason=args.reason, auto_approve=args.yes),
                            show=args.output == "text", title=f"rollback {spec.name}")
    if args.output == "json":
        print(json.dumps(result, indent=2))
    elif result["status"] == "rejected":
        print(f"rollback of {spec.name} rejected; nothing changed")
    else:
        print(f"{spec.name} serves the spec of revision {result['to']} again, as revision {result['revision']}")
    return 0


def _teardown(args) -> int:
    from runtime.spec import load_spec

    spec = load_spec(args.spec)
    _prepare_prefect(quiet=args.output == "json", verbose=args.verbose)
    from flows.teardown import teardown

    result = _with_progress(lambda: teardown(spec=_spec_param(args.spec, spec),
                                             delete_model_cache=args.delete_model_cache),
                            show=args.output == "text", title=f"teardown {spec.name}")
    if args.output == "json":
        print(json.dumps(result, indent=2))
    else:
        print(f"{spec.name} torn down; nothing left" + ("" if result["model_cache_kept"] else "; model cache deleted"))
    return 0


def _server(args) -> int:
    from runtime import prefect_server

    if args.action == "stop":
        print("stopped" if prefect_server.stop_server() else "not running")
    else:
        url = prefect_server.ensure_server() if args.action == "start" else prefect_server.running_url()
        print(url or "not running")
    return 0


# -- helpers ----------------------------------------------------------------------------------
def _spec_param(path: str, spec) -> str | dict:
    """What the flow gets as its ``spec``: the file's absolute path when it is a regular file (the
    run's parameters then name it), else the spec already read and validated here. A spec given as
    ``<(...)``, ``/dev/stdin`` or a named pipe can be read only once: the flow would find it empty."""
    from pathlib import Path

    return os.path.abspath(path) if Path(path).is_file() else spec.canonical_dict()


def _print_revisions(revisions: list[dict]) -> None:
    if not revisions:
        print("no revisions")
        return
    print(f"{'rev':>4}  {'status':<11} {'created':<26} {'reason':<12} {'model':<40} smoke")
    for r in revisions:
        model = f"{r['model'].get('id', '')}@{str(r['model'].get('revision', ''))[:16]}"
        print(f"{r['number']:>4}  {r['status']:<11} {r['created_at']:<26} {r['reason'][:12]:<12} {model:<40} "
              f"{ {True: 'pass', False: 'FAIL', None: '-'}[r.get('smoke_passed')] }")


def _prepare_prefect(quiet: bool, verbose: bool = False) -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The live stage view and the one-line error replace Prefect's console lines (tracebacks
    # included); they all still reach the Prefect UI. --verbose brings them back.
    level = "INFO" if verbose else "CRITICAL"
    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
        os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", level)
    # A loaded 2-core machine can take well over Prefect's default 20 s to boot its temporary server.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    if os.environ.get("PREFECT_API_URL") or os.environ.get("DYNADEPLOY_PREFECT") == "ephemeral":
        return
    from runtime import prefect_server

    if not prefect_server.running_url() and not quiet:
        print("starting the local Prefect server (once; later runs reuse it) ...", file=sys.stderr)
    os.environ["PREFECT_API_URL"] = prefect_server.ensure_server()
    if not quiet:
        print(f"Prefect UI: {os.environ['PREFECT_API_URL'].removesuffix('/api')}", file=sys.stderr)


def _with_progress(run, *, show: bool, title: str):
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


if __name__ == "__main__":
    sys.exit(main())
