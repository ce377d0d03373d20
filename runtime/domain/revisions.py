"""Pure: the revision ledger's records and the decisions made on them.

Every rollout, promotion and rollback is a numbered Revision holding what is needed to restore it
(the whole spec, the rendered programs/manifests, versions, the model revision) and what happened
(smoke results, who/why, status). Stores (local files, in-cluster ConfigMaps) only persist these.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

STATUSES = ("pending", "serving", "superseded", "failed", "rolled_back")


@dataclass
class Revision:
    number: int
    spec_hash: str
    spec: dict
    created_at: str
    reason: str = "deploy"
    started_by: str = "dynadeploy"
    status: str = "pending"
    model: dict = field(default_factory=dict)  # {"id", "revision"}
    versions: dict = field(default_factory=dict)  # {"dynamo", "engine", "image", "chart"...}
    rendered: list = field(default_factory=list)  # programs (local) or manifests (kube)
    smoke: dict = field(default_factory=dict)
    analysis: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Revision:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def current(revisions: list[Revision]) -> Revision | None:
    """The revision now serving (the newest with status serving)."""
    serving = [r for r in revisions if r.status == "serving"]
    return max(serving, key=lambda r: r.number) if serving else None


def last_good(revisions: list[Revision], *, before: int | None = None) -> Revision | None:
    """The newest revision that served successfully, optionally older than ``before``."""
    good = [
        r
        for r in revisions
        if r.status in ("serving", "superseded")
        and r.smoke.get("passed", True)
        and (before is None or r.number < before)
    ]
    return max(good, key=lambda r: r.number) if good else None


def next_number(revisions: list[Revision]) -> int:
    return max((r.number for r in revisions), default=0) + 1


def diff(a: dict, b: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """Leaf-level differences between two nested dicts: (dotted path, a value, b value)."""
    out: list[tuple[str, object, object]] = []
    for key in sorted(set(a) | set(b), key=str):
        path = f"{prefix}.{key}" if prefix else str(key)
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.extend(diff(va, vb, path))
        elif va != vb:
            out.append((path, va, vb))
    return out


def alert_is_stale(revisions: list[Revision], alerted: int | str | None) -> str | None:
    """Why a rollback started for an alert on revision ``alerted`` has nothing left to do, or None.

    An alert fires on several rules at once (TTFT and ITL, the 1h and the 6h pair) and each firing
    starts a rollback run; the runs queue on the target's slot. The first restores the last good
    revision; a later one would otherwise pick "the last good before what serves now", which can be
    the very revision that alerted (it passed its smoke test before it degraded): a roll forward
    into the fault. A rollback for an alert acts only while the alerted revision still serves.
    """
    if alerted in (None, "", "None"):
        return None
    cur = current(revisions)
    if cur is not None and cur.number == int(alerted):
        return None
    return (
        f"the alert was about revision {alerted}, which no longer serves (now "
        f"{cur.number if cur else 'nothing'}): already rolled back or replaced"
    )


def plan_rollback(revisions: list[Revision], number: int | None = None) -> tuple[Revision | None, Revision]:
    """Pick (current, target) for a rollback: ``number`` if given, else the last good one before current.

    Raises ValueError with a user-facing reason when there is nothing to roll back to.
    """
    cur = current(revisions)
    by_number = {r.number: r for r in revisions}
    if number is not None:
        if number not in by_number:
            known = ", ".join(str(n) for n in sorted(by_number)) or "none"
            raise ValueError(f"revision {number} is not in the ledger (known: {known})")
        target = by_number[number]
        if target.status in ("pending", "failed"):
            raise ValueError(f"revision {number} never served (status {target.status}); pick one that did")
    else:
        found = last_good(revisions, before=cur.number if cur else None)
        if found is None:
            raise ValueError("no earlier good revision to roll back to")
        target = found
    if cur is not None and target.spec_hash == cur.spec_hash:
        raise ValueError(
            f"revision {target.number} is what is serving now (revision {cur.number}); nothing to do"
        )
    return cur, target


def describe_changes(cur: Revision | None, target: Revision) -> list[dict]:
    """Rows of what a move from ``cur`` to ``target`` changes: spec fields, model, versions."""
    if cur is None:
        return [{"field": "(everything)", "now": "nothing serving", "after": f"revision {target.number}"}]
    rows = [{"field": f"spec.{path}", "now": a, "after": b} for path, a, b in diff(cur.spec, target.spec)]
    rows += [{"field": f"model.{path}", "now": a, "after": b} for path, a, b in diff(cur.model, target.model)]
    rows += [
        {"field": f"versions.{path}", "now": a, "after": b}
        for path, a, b in diff(cur.versions, target.versions)
    ]
    before = (cur.spec.get("serving") or {}).get("topology", "agg")
    after = (target.spec.get("serving") or {}).get("topology", "agg")
    if before != after:  # said before the approval: the graph's component set changes
        rows.insert(
            0,
            {
                "field": "(graph)",
                "now": f"topology {before}",
                "after": f"topology {after}: the component set changes (Kubernetes: the graph is "
                "replaced, not updated; a bridge graph carries serving.route meanwhile, and without "
                "a route nothing serves until the new graph is ready)",
            },
        )
    return rows
