"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.harness.kubeapi import BasicControllers, Simulator


def _start(tmp_path_factory: pytest.TempPathFactory, basic_controllers: bool) -> Simulator:
    home = tmp_path_factory.mktemp("kubeapi")
    sim = Simulator().start()
    if basic_controllers:
        sim.add_controller(BasicControllers(delay=0.0), every=0.05, name="basic")
    sim.write_kubeconfig(home / "kubeconfig")
    sim.env = sim.tool_env(home)
    return sim


@pytest.fixture
def kubeapi(tmp_path_factory: pytest.TempPathFactory):
    """A fresh Kubernetes API simulator on 127.0.0.1 (its own thread and event loop), with the basic
    Deployment/Job readiness controller so ``helm --wait`` finishes.

    Yields the Simulator: ``.url``, ``.kubeconfig`` (path), ``.env`` (subprocess env for helm/kubectl with
    private caches), ``.store``, ``.faults``, ``.requests``, ``.api_client()``, ``.add_controller()``,
    ``.stop()``. See tests/harness/README.md.
    """
    sim = _start(tmp_path_factory, basic_controllers=True)
    yield sim
    sim.stop()


@pytest.fixture
def kubeapi_bare(tmp_path_factory: pytest.TempPathFactory):
    """Like ``kubeapi`` but with no controllers at all (nothing ever becomes ready on its own)."""
    sim = _start(tmp_path_factory, basic_controllers=False)
    yield sim
    sim.stop()
