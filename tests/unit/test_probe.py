"""runtime.gateways.probe: the one /v1/models probe against the fake OpenAI frontend; it never raises."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from runtime.errors import RolloutFailed
from runtime.gateways import probe
from tests.harness.fake_openai import FakeConfig, FakeOpenAI


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(FakeConfig(models=["tiny-mock", "other"])) as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_models_at_lists_the_served_ids(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a proxy cannot reach loopback: ignored
    assert probe.models_at(fake.base_url) == ["tiny-mock", "other"]
    host, port = fake.base_url.removeprefix("http://").split(":")
    assert probe.served_models(host, int(port)) == ["tiny-mock", "other"]


def test_an_unreachable_frontend_lists_nothing() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    assert probe.models_at(url) == []
    assert probe.wait_listed(url, "tiny-mock", 0.05, interval_s=0.01) is False


def test_wait_listed_returns_once_the_model_is_listed(fake: FakeOpenAI) -> None:
    assert probe.wait_listed(fake.base_url, "other", 5) is True


def test_ready_within_names_what_is_stuck() -> None:
    with pytest.raises(RolloutFailed, match=r"timed out after 0s: etcd not listening"):
        probe.ready_within(lambda: False, 0.02, interval_s=0.01, describe=lambda: "etcd not listening")
    with pytest.raises(RolloutFailed, match=r"timed out after 0s: condition not met"):
        probe.ready_within(lambda: False, 0.02, interval_s=0.01)
