"""Pure ledger decisions: which revision serves, which is the last good one, rollback plans, diffs."""

from __future__ import annotations

import pytest

from runtime.domain.revisions import (
    Revision,
    alert_is_stale,
    current,
    describe_changes,
    diff,
    last_good,
    next_number,
    plan_rollback,
)


def rev(n: int, status: str, h: str, smoke_passed: bool | None = True, **spec) -> Revision:
    smoke = {} if smoke_passed is None else {"passed": smoke_passed}
    return Revision(
        number=n,
        spec_hash=h,
        spec=spec or {"v": h},
        created_at="t",
        status=status,
        smoke=smoke,
        model={"id": "m", "revision": h},
    )


LEDGER = [
    rev(1, "superseded", "a"),
    rev(2, "superseded", "b", smoke_passed=False),
    rev(3, "failed", "c"),
    rev(4, "serving", "d"),
]


def test_current_last_good_and_next():
    assert current(LEDGER).number == 4
    assert last_good(LEDGER, before=4).number == 1  # 2 failed its smoke test, 3 never served
    assert next_number(LEDGER) == 5 and next_number([]) == 1
    assert current([]) is None


def test_plan_defaults_to_last_good_before_current():
    cur, target = plan_rollback(LEDGER)
    assert (cur.number, target.number) == (4, 1)


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (9, "not in the ledger"),
        (3, "never served"),
        (4, "nothing to do"),
    ],
)
def test_plan_refuses_impossible_targets(number, message):
    with pytest.raises(ValueError, match=message):
        plan_rollback(LEDGER, number)


def test_plan_without_any_good_revision():
    with pytest.raises(ValueError, match="no earlier good revision"):
        plan_rollback([rev(1, "serving", "a")])


def test_diff_and_describe_changes():
    a = {"serving": {"image": "x:1", "workers": {"replicas": 1}}, "name": "n"}
    b = {"serving": {"image": "x:2", "workers": {"replicas": 1}}, "name": "n", "extra": True}
    assert diff(a, b) == [("extra", None, True), ("serving.image", "x:1", "x:2")]
    rows = describe_changes(rev(2, "serving", "b", **a), rev(1, "superseded", "a", **b))
    fields = [r["field"] for r in rows]
    assert "spec.serving.image" in fields and "model.revision" in fields
    assert describe_changes(None, LEDGER[0])[0]["now"] == "nothing serving"


def test_a_rollback_across_a_topology_change_says_the_graph_is_replaced():
    a = {"serving": {"topology": "disagg"}, "name": "n"}
    b = {"serving": {"topology": "agg"}, "name": "n"}
    rows = describe_changes(rev(2, "serving", "b", **a), rev(1, "superseded", "a", **b))
    assert rows[0]["field"] == "(graph)" and "replaced, not updated" in rows[0]["after"]
    same = describe_changes(rev(2, "serving", "b", **b), rev(1, "superseded", "a", **b))
    assert all(r["field"] != "(graph)" for r in same)


def test_a_rollback_for_an_alert_acts_only_while_the_alerted_revision_serves():
    # revision 2 passed its smoke test, then degraded and alerted; the first rollback restored 1 as 3
    degraded = [rev(1, "superseded", "a"), rev(2, "serving", "b")]
    restored = [rev(1, "superseded", "a"), rev(2, "superseded", "b"), rev(3, "serving", "a")]
    assert alert_is_stale(degraded, 2) is None and alert_is_stale(degraded, "2") is None
    # a second queued run for the same alert would pick "last good before 3" = 2: the bad one
    assert plan_rollback(restored)[1].number == 2
    assert "no longer serves (now 3)" in alert_is_stale(restored, 2)
    assert alert_is_stale(restored, None) is None  # not started by an alert: plan as usual
    assert "now nothing" in alert_is_stale([], 2)
