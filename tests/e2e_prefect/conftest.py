"""One real Prefect server + process worker (see stack.py), shared by the tests of this directory.

What is real: `prefect server start` (SQLite in a temporary PREFECT_HOME, UI served, analytics off),
the `dynadeploy-process` work pool, `prefect --no-prompt deploy --all` reading prefect.yaml from the
project root, `prefect worker start` running the flows in subprocesses, the Dynamo frontend and
mocker processes those flows start. What is not: a GPU (the mocker engine stands in for vLLM).
All traffic stays on 127.0.0.1. The fixture stops everything it started and fails if anything that
carries its process marker is still alive afterwards.
"""

from __future__ import annotations

import pytest

from tests.e2e_prefect.stack import PrefectStack


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can tell a failed test (UI screenshots)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="package")  # stopped after this directory's last test, not at the end of the whole run
def stack(tmp_path_factory):
    s = PrefectStack(tmp_path_factory.mktemp("prefect-e2e"))
    try:
        s.up()
    except BaseException:
        s.stop()
        raise
    yield s
    leaked = s.stop()
    assert not leaked, f"processes left running after the Prefect stack stopped (killed now): {leaked}"
