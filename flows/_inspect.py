"""`dynadeploy status | history | diff`: the read-only commands. They ask the target's backend (built by the
tasks layer, with the target's credentials) and the Prefect server the CLI uses; they never start a flow."""

from __future__ import annotations

import json
import os
from datetime import UTC


def status(args) -> int:
    from flows._status import verdict
    from runtime.domain import naming
    from runtime.spec import load_spec
    from tasks.targets import backend

    spec = load_spec(args.spec)
    st = backend(spec).status()
    status = st.as_dict() | verdict(st, naming.spec_hash(spec))
    # A degraded deployment (e.g. its supervisor gone, orphans left) must not read as healthy: it
    # exits 3 like one serving nothing, in both output forms.
    problems = st.problems or []
    if problems:
        status["verdict"], status["reasons"] = "degraded", problems + status["reasons"]
    status["operations"] = _operations(spec.name)
    if args.output == "json":
        print(json.dumps(status, indent=2))
        return 3 if problems else 0
    print(
        f"{status['name']}: {status['verdict'].upper()}"
        + (f" (revision {status['serving_revision']})" if status["serving_revision"] else "")
        + (f": {'; '.join(status['reasons'])}" if status["reasons"] else "")
    )
    for w in status["warnings"]:
        print(f"warning: {w}")
    ops = status["operations"]
    if isinstance(ops, list):
        for op in ops:
            print(f"  {op['state'].lower():<8} {op['flow']} run {op['run']} for {op['for']}  {op['url']}")
    print(f"{st.name} ({st.target}) endpoint {st.endpoint}")
    print(f"models served: {st.models or 'none'}; workers discovered: {st.workers_discovered}")
    for name, p in sorted((st.processes or {}).items()):
        print(f"  {name:<16} {p['state']:<9} pid {p['pid']:<7} up {p['uptime_s']}s")
    print_revisions(status["revisions"])
    if st.slo:  # a deployment with monitoring: live burn rates and alerts from its Prometheus
        from runtime.gateways.slo_status import lines

        print("\n".join(lines(dict(st.slo))))
    return 0 if st.models and not problems else 3


def _operations(name: str):
    """Running and paused runs on the target, from the Prefect server the CLI uses; never starts one."""
    from runtime.gateways import prefect_server

    if not os.environ.get("PREFECT_API_URL"):
        url = prefect_server.running_url()
        if not url:
            return "unknown (no Prefect server running)"
        os.environ["PREFECT_API_URL"] = url
    try:
        from flows._slot_report import slot_holders

        return slot_holders(name)
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"


def history(args) -> int:
    from runtime.spec import load_spec
    from tasks.targets import backend

    revisions = backend(load_spec(args.spec)).status().as_dict()["revisions"]
    if args.output == "json":
        print(json.dumps(revisions, indent=2))
    else:
        print_revisions(revisions)
    return 0


def diff(args) -> int:
    from runtime.domain import revisions as revlib
    from runtime.errors import PermanentError
    from runtime.spec import load_spec
    from tasks.targets import backend

    by_number = {r.number: r for r in backend(load_spec(args.spec)).revisions()}
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


def _age(iso: str) -> str:
    from datetime import datetime

    try:
        when = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)[:16]
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    s = max(0, int((datetime.now(UTC) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def print_revisions(revisions: list[dict]) -> None:
    if not revisions:
        print("no revisions")
        return
    import shutil

    width = shutil.get_terminal_size((100, 24)).columns
    fixed = 4 + 2 + 11 + 1 + 8 + 1 + 5 + 1 + 12 + 1  # rev, status, age, smoke, model revision
    rest = max(20, width - fixed)
    model_w, reason_w = rest * 3 // 5 - 1, rest - rest * 3 // 5 - 1

    def cut(text: str, n: int) -> str:
        return text if len(text) <= n else text[: max(n - 1, 0)] + "…"

    print(f"{'rev':>4}  {'status':<11} {'age':<8} {'smoke':<5} {'model':<{model_w}} {'model rev':<12} reason")
    for r in revisions:
        smoke = {True: "pass", False: "FAIL", None: "-"}[r.get("smoke_passed")]
        model = r.get("model") or {}
        print(
            f"{r['number']:>4}  {r['status']:<11} {_age(r['created_at']):<8} {smoke:<5} "
            f"{cut(str(model.get('id', '')), model_w):<{model_w}} {str(model.get('revision') or '-')[:12]:<12} "
            f"{cut(str(r.get('reason', '')), reason_w)}"
        )
