"""`dynadeploy`: the command line front of the same Prefect flows that prefect.yaml deploys.

    dynadeploy deploy SPEC [--output json]      deploy or converge; prints the endpoint
    dynadeploy status SPEC [--output json]      revisions and live health
    dynadeploy teardown SPEC [--delete-model-cache]
    dynadeploy history SPEC                     the revision ledger
    dynadeploy diff SPEC A B                    what differs between revisions A and B
    dynadeploy rollback SPEC [--revision N] [--yes]   a rejected rollback exits 4
    dynadeploy approve SPEC [--note TEXT]       approve the rollback that waits for approval
    dynadeploy reject SPEC [--note TEXT]        reject it (the rollback changes nothing, ends Cancelled)
    dynadeploy canary SPEC --candidate JSON|FILE  gate a candidate, then promote or roll back
    dynadeploy server start|stop|url|env        the Prefect server the CLI uses; `eval "$(dynadeploy server
                                                env)"` points `prefect` commands at it (one run history)
    dynadeploy --version

Flows report to PREFECT_API_URL when it is set, else to a local Prefect server this CLI starts once
and reuses (DYNADEPLOY_PREFECT=ephemeral runs a throwaway in-process server instead). A failure
prints one line, `error: <reason> (fix: ...)`, and exits 1; a bad spec exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from flows import _inspect, _live
from runtime import settings


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


EXAMPLES = {
    "deploy": "dynadeploy deploy infra/targets/local.yaml",
    "status": "dynadeploy status infra/targets/local.yaml --output json",
    "teardown": "dynadeploy teardown infra/targets/local.yaml --delete-model-cache",
    "history": "dynadeploy history infra/targets/local.yaml",
    "diff": "dynadeploy diff infra/targets/local.yaml 1 2",
    "rollback": "dynadeploy rollback infra/targets/local.yaml --revision 1",
    "canary": 'dynadeploy canary infra/targets/local.yaml --candidate \'{"serving": {"mocker": {"speedup_ratio": 12}}}\'',
    "server": "dynadeploy server url",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dynadeploy")
    except PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dynadeploy", description=__doc__.split("\n\n")[0], epilog="example: " + EXAMPLES["deploy"]
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also show Prefect's own log lines")
    p.add_argument("--version", action="version", version=f"dynadeploy {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, what: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=what, description=what, epilog=f"example: {EXAMPLES[name]}")
        if name != "server":
            c.add_argument("spec", help="the deployment's spec file (YAML; see README 'Writing a spec')")
        return c

    def output(c: argparse.ArgumentParser) -> None:
        c.add_argument(
            "--output",
            choices=["text", "json"],
            default="text",
            help="text for people (default), json for scripts",
        )

    d = command("deploy", "deploy or converge a spec, then smoke-test it; prints the endpoint")
    d.add_argument("--reason", default="deploy", help="recorded with the revision")
    output(d)
    d.set_defaults(func=_deploy)

    s = command(
        "status",
        "one verdict (serving / degraded / not deployed), the runs on the target, live "
        "health and revisions; exits 3 when no model is served",
    )
    output(s)
    s.set_defaults(func=_inspect.status)

    t = command("teardown", "stop and remove a deployment, then check nothing is left")
    t.add_argument("--delete-model-cache", action="store_true", help="also delete the downloaded model files")
    output(t)
    t.set_defaults(func=_teardown)

    h = command("history", "the revision ledger of a deployment, newest last")
    output(h)
    h.set_defaults(func=_inspect.history)

    df = command("diff", "what differs between two recorded revisions")
    df.add_argument("a", type=int, help="a revision number (see history)")
    df.add_argument("b", type=int, help="another revision number")
    output(df)
    df.set_defaults(func=_inspect.diff)

    c = command(
        "canary",
        "stage a candidate beside stable, gate it on identical load and real traffic, "
        "then promote it or roll it back (exit 1); live steps, shares and verdicts",
    )
    c.add_argument(
        "--candidate",
        required=True,
        help="the changes as JSON, merged into the spec (an image, engine args, a model revision, "
        "replicas...), or the path of a whole candidate spec",
    )
    c.add_argument("--reason", default="canary from the CLI", help="recorded with the promoted revision")
    output(c)
    c.set_defaults(func=_canary)

    rb = command(
        "rollback",
        "restore a recorded revision (default: the last good one) after an approval "
        "(UI, or dynadeploy approve|reject); a rejected rollback exits 4",
    )
    rb.add_argument("--revision", type=int, default=None, help="the revision to restore (see history)")
    rb.add_argument("--reason", default="rollback from the CLI", help="recorded with the new revision")
    rb.add_argument(
        "--yes", action="store_true", help="skip the approval pause (otherwise approve in the Prefect UI)"
    )
    output(rb)
    rb.set_defaults(func=_rollback)

    for verb, what in (
        ("approve", "approve the paused rollback of a deployment: it restores the revision"),
        (
            "reject",
            (
                "reject the paused rollback of a deployment: nothing changes, its run ends "
                "Cancelled and `dynadeploy rollback` exits 4"
            ),
        ),
    ):
        EXAMPLES[verb] = f"dynadeploy {verb} infra/targets/local.yaml --note 'checked the plan'"
        ap = command(verb, what)
        ap.add_argument("--note", default="", help="why; recorded with the answer and shown in the run")
        output(ap)
        ap.set_defaults(func=_answer, approve=verb == "approve")

    sv = command("server", "the local Prefect server used when PREFECT_API_URL is unset")
    sv.add_argument(
        "action",
        choices=["start", "stop", "url", "env"],
        help="start it (once), stop it, print the API URL the CLI's runs report to, or print "
        "`export PREFECT_API_URL=...` for the shell (eval it; starts the server if needed)",
    )
    sv.set_defaults(func=_server)
    return p


# -- commands ---------------------------------------------------------------------------------
def _deploy(args) -> int:
    from runtime.spec import load_spec

    spec = load_spec(args.spec)  # validate before anything starts
    _prepare_prefect(quiet=args.output == "json", verbose=args.verbose)
    from flows._converge import converge  # nothing differs and healthy: a recorded no-op, no engine

    result = converge(args.spec, spec, reason=args.reason)
    if result is None:
        from flows.deploy import deploy

        result = _live.with_progress(
            lambda: _tagged(args.spec, lambda: deploy(spec=_spec_param(args.spec, spec), reason=args.reason)),
            show=args.output == "text",
            title=f"deploy {spec.name} ({spec.target.kind})",
        )
    elif args.output == "text":
        print(
            f"no changes: revision {result['revision']} already serves this spec, healthy "
            f"(Prefect run {result['flow_run']})",
            file=sys.stderr,
        )
    if args.output == "json":
        out = {k: result[k] for k in ("target", "endpoint", "model", "revision", "smoke")}
        print(json.dumps(out, indent=2))
    else:
        sm = result["smoke"]
        print(
            f"{spec.name} is serving {result['model']} at {result['endpoint']} (revision {result['revision']}, "
            f"engine {result['engine']})"
        )
        print(
            f"smoke: {sm['requests']} requests, {sm['errors']} errors, ttft p90 {sm['ttft_ms']['p90']:.0f} ms, "
            f"itl p90 {sm['itl_ms']['p90']:.1f} ms, {sm['tokens_per_s']:.0f} tokens/s"
        )
        print(
            "try it:\n  curl -s "
            + result["endpoint"]
            + "/v1/chat/completions -H 'Content-Type: application/json' \\\n"
            f'    -d \'{{"model": "{result["model"]}", "messages": [{{"role": "user", "content": "Hello"}}], '
            '"max_tokens": 16}\''
        )
    return 0


def _rollback(args) -> int:
    from runtime.spec import load_spec

    spec = load_spec(args.spec)
    _prepare_prefect(quiet=args.output == "json", verbose=args.verbose)
    from prefect.exceptions import CancelledRun

    from flows.rollback import rollback

    if not args.yes and args.output == "text":
        print(
            "waiting for approval in the Prefect UI (the run pauses with an approve/note form) or from a "
            f"terminal: dynadeploy approve|reject {args.spec} --note ...",
            file=sys.stderr,
        )
    try:
        result = _live.with_progress(
            lambda: _tagged(
                args.spec,
                lambda: rollback(
                    spec=_spec_param(args.spec, spec),
                    revision=args.revision,
                    reason=args.reason,
                    auto_approve=args.yes,
                ),
            ),
            show=args.output == "text",
            title=f"rollback {spec.name}",
        )
    except CancelledRun as exc:
        if args.output == "json":
            print(json.dumps({"name": spec.name, "status": "rejected", "message": str(exc)}, indent=2))
        print(f"error: {exc}", file=sys.stderr)
        return 4
    if args.output == "json":
        print(json.dumps(result, indent=2))
    elif result["status"] == "rejected":
        print(f"rollback of {spec.name} rejected; nothing changed")
    else:
        print(
            f"{spec.name} serves the spec of revision {result['to']} again, as revision {result['revision']}"
        )
    return 0


def _tagged(spec_path: str, run):
    """Run a flow with the tags a prefect.yaml deployment run of this spec file carries."""
    from pathlib import Path

    from prefect import tags

    with tags("dynadeploy", f"target:{Path(spec_path).stem}"):
        return run()


def _parse_candidate(text: str) -> dict:
    from runtime.errors import PermanentError

    if os.path.isfile(text):
        return {"spec": os.path.abspath(text)}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PermanentError(
            f"--candidate is neither a file nor JSON ({exc})",
            hint='e.g. --candidate \'{"serving": {"mocker": {"speedup_ratio": 12}}}\'',
        ) from exc
    if not isinstance(value, dict):
        raise PermanentError("--candidate must be a JSON object", hint="the changes to merge into the spec")
    return value


def _canary(args) -> int:
    from runtime.spec import load_spec

    spec = load_spec(args.spec)
    candidate = _parse_candidate(args.candidate)
    _prepare_prefect(quiet=args.output == "json", verbose=args.verbose)
    from flows.canary import CanaryFailed, canary

    try:
        result = _live.with_progress(
            lambda: _tagged(
                args.spec,
                lambda: canary(spec=_spec_param(args.spec, spec), candidate=candidate, reason=args.reason),
            ),
            show=args.output == "text",
            title=f"canary {spec.name} ({spec.target.kind})",
        )
    except CanaryFailed as exc:
        if args.output == "json":
            print(
                json.dumps(
                    {
                        "name": spec.name,
                        "status": "rolled back",
                        "why": str(exc),
                        "steps": _step_rows(getattr(exc, "steps", None) or []),
                    },
                    indent=2,
                    default=str,
                )
            )
        else:
            _print_steps(getattr(exc, "steps", None) or [], sys.stderr)
        raise
    if args.output == "json":
        print(json.dumps(result | {"steps": _step_rows(result["steps"])}, indent=2, default=str))
        return 0
    _print_steps(result["steps"], sys.stdout)
    print(f"{spec.name}: candidate promoted as revision {result['revision']} ({result['traffic']})")
    return 0


def _step_rows(rows: list[dict]) -> list[dict]:
    return [
        {k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items() if k != "frontend_metrics"}
        for r in rows
    ]


def _print_steps(rows: list[dict], out) -> None:
    if not rows:
        return

    def ms(v) -> str:
        return "-" if v is None else f"{v:.1f}"

    print(
        f"{'step':<13} {'share':>6} {'ttft p90 stable':>16} {'candidate':>10} {'verdict':<13} analyses",
        file=out,
    )
    for r in rows:
        print(
            f"{r['step']:<13} {r['share']:>6.0%} {ms(r.get('stable_ttft_p90_ms')):>16} "
            f"{ms(r.get('candidate_ttft_p90_ms')):>10} {r['verdict']:<13} {r.get('analyses', 1)}",
            file=out,
        )


def _answer(args) -> int:
    from runtime.spec import load_spec

    spec = load_spec(args.spec)
    _prepare_prefect(quiet=True, verbose=args.verbose)
    from flows._approval import answer

    out = answer(spec.name, args.approve, args.note)
    if args.output == "json":
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"{out['answer']} the rollback of {spec.name} to revision {out['revision']} (run {out['flow_run']})"
        + (f": {out['note']}" if out["note"] else "")
    )
    print(
        ("it restores now; " if args.approve else "it changes nothing and ends Cancelled; ")
        + f"see {out['url']}"
    )
    if out["also_waiting"]:
        print(f"{out['also_waiting']} more rollback(s) of {spec.name} still wait", file=sys.stderr)
    return 0


def _teardown(args) -> int:
    from runtime.spec import load_spec

    spec = load_spec(args.spec)
    _prepare_prefect(quiet=args.output == "json", verbose=args.verbose)
    from flows.teardown import teardown

    result = _live.with_progress(
        lambda: _tagged(
            args.spec,
            lambda: teardown(spec=_spec_param(args.spec, spec), delete_model_cache=args.delete_model_cache),
        ),
        show=args.output == "text",
        title=f"teardown {spec.name}",
    )
    if args.output == "json":
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{spec.name} torn down; nothing left"
            + ("" if result["model_cache_kept"] else "; model cache deleted")
        )
    return 0


def _server(args) -> int:
    from runtime.gateways import prefect_server

    if args.action == "stop":
        print("stopped" if prefect_server.stop_server() else "not running")
        return 0
    if args.action == "env" and settings.prefect_ephemeral():
        print("error: DYNADEPLOY_PREFECT=ephemeral runs have no server to share", file=sys.stderr)
        return 1
    if args.action == "start":
        print(prefect_server.ensure_server())
        return 0
    # url/env: the server _prepare_prefect gives the CLI's runs (PREFECT_API_URL when set, else the local one)
    url = os.environ.get("PREFECT_API_URL") or (
        prefect_server.ensure_server() if args.action == "env" else prefect_server.running_url()
    )
    if args.action == "env":
        import shlex

        print(f"export PREFECT_API_URL={shlex.quote(url)}")
    else:
        print(url or "not running")
    return 0


# -- helpers ----------------------------------------------------------------------------------
def _spec_param(path: str, spec) -> str | dict:
    """What the flow gets as its ``spec``: the file's absolute path when it is a regular file (the
    run's parameters then name it), else the spec already read and validated here. A spec given as
    ``<(...)``, ``/dev/stdin`` or a named pipe can be read only once: the flow would find it empty."""
    from pathlib import Path

    return os.path.abspath(path) if Path(path).is_file() else spec.canonical_dict()


def _prepare_prefect(quiet: bool, verbose: bool = False) -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The live stage view and the one-line error replace Prefect's console lines (tracebacks
    # included); they all still reach the Prefect UI. --verbose brings them back.
    level = "INFO" if verbose else "CRITICAL"
    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
        os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", level)
    # A loaded 2-core machine can take well over Prefect's default 20 s to boot its temporary server.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    if os.environ.get("PREFECT_API_URL") or settings.prefect_ephemeral():
        return
    from runtime.gateways import prefect_server

    if not prefect_server.running_url() and not quiet:
        print("starting the local Prefect server (once; later runs reuse it) ...", file=sys.stderr)
    os.environ["PREFECT_API_URL"] = prefect_server.ensure_server()
    if not quiet:
        print(f"Prefect UI: {os.environ['PREFECT_API_URL'].removesuffix('/api')}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
