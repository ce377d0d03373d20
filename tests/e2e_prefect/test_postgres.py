"""The Prefect server on PostgreSQL, the way a team outgrowing SQLite runs it.

A throwaway cluster from Debian's postgresql (initdb + pg_ctl in a temporary directory, a free
loopback port, trust auth on loopback; as the `postgres` user when the tests run as root, since
initdb refuses root), a Prefect server with PREFECT_API_DATABASE_CONNECTION_URL pointing at it,
`prefect deploy` of deploy-local from prefect.yaml, a process worker, one `prefect deployment run`
of deploy-local, then everything is stopped: deployment, worker, server, cluster.
"""

from __future__ import annotations

import uuid

import pytest

from runtime.spec import load_spec
from runtime.targets.local.backend import LocalBackend
from tests.e2e_prefect.stack import (
    PostgresCluster,
    PrefectStack,
    chat,
    marked_pids,
    postgres_bin,
    postgres_user,
)

PG_BIN = postgres_bin()

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        PG_BIN is None,
        reason="Debian's postgresql (initdb, pg_ctl under "
        "/usr/lib/postgresql/*/bin) is not installed (`make debs`)",
    ),
]


def test_server_on_postgres_deploys_and_runs_deploy_local(tmp_path):
    pg = PostgresCluster(PG_BIN, postgres_user(), token=uuid.uuid4().hex)  # its own process marker
    stack = PrefectStack(tmp_path / "stack", db_url=pg.url)
    try:
        pg.start()
        stack.up("deploy-local")
        assert "deploy-local" in stack.deployed.stdout
        path = stack.write_spec("e2e-pg", {"mocker": {"speedup_ratio": 10.0}})
        out = stack.cli(
            "deployment",
            "run",
            "deploy/deploy-local",
            "--param",
            f"spec={path}",
            "--watch",
            "--watch-timeout",
            "400",
            timeout_s=450,
        )
        assert "Completed" in out.stdout, out.stdout[-2000:]

        spec = load_spec(path)
        backend = LocalBackend(spec)
        assert [(r.number, r.status) for r in backend.revisions()] == [(1, "serving")]
        assert chat(backend.endpoint(), spec.model.served())
        # the server kept it all in PostgreSQL
        (run,) = stack.http.post(
            "/flow_runs/filter", json={"deployments": {"name": {"any_": ["deploy-local"]}}}
        ).json()
        assert pg.psql(f"select state_type from flow_run where id = '{run['id']}'").strip() == "COMPLETED"
        assert pg.psql("select name from deployment").split() == ["deploy-local"]
        assert int(pg.psql("select count(*) from task_run where state_type = 'COMPLETED'")) >= 6
    finally:
        leaked = stack.stop()  # deployment, worker, server
        pg_left = pg.stop()
    assert not leaked, f"left running after stop (killed now): {leaked}"
    assert pg_left == [] and marked_pids(pg.token) == [], "the PostgreSQL cluster stopped cleanly"
