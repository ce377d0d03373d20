"""runtime.gateways.loadgen against tests/harness/fake_openai.py on 127.0.0.1 (a real HTTP server, no engine).

Timing assertions are one-sided or generous (a delay is a lower bound; the upper bound allows several
times the configured delay) so that a loaded 2-core CI box does not make them flaky.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from runtime.domain.sla import SmokeResult
from runtime.errors import SmokeTestFailed, TransientError
from runtime.gateways import loadgen
from runtime.spec import SlaSpec, SmokeSpec
from tests.harness.fake_openai import FakeConfig, FakeOpenAI

MODEL = "tiny-mock"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAI) -> FakeOpenAI:
    """The shared server with default behaviour and fresh counters for each test."""
    server.config = FakeConfig(models=[MODEL])
    server.reset_stats()
    return server


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def load(base_url: str, **kw: object) -> loadgen.LoadReport:
    args: dict = {"requests": 10, "concurrency": 2, "max_tokens": 8, "prompt": "hi", "timeout_s": 5.0} | kw
    return asyncio.run(loadgen.run_load(base_url, MODEL, **args))


def smoke_spec(**sla: float) -> dict:
    return {"requests": 12, "concurrency": 3, "max_tokens": 6, "prompt": "hi", "timeout_s": 5.0, "sla": sla}


# -- /v1/models ----------------------------------------------------------------------------------
def test_check_models_returns_served_ids(fake: FakeOpenAI) -> None:
    fake.config.models = [MODEL, "other"]
    assert asyncio.run(loadgen.check_models(fake.base_url + "/v1/", MODEL, 5)) == [MODEL, "other"]


def test_check_models_and_load_ignore_a_proxy_in_the_environment(
    fake: FakeOpenAI, closed_port_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loopback probes never go through HTTP(S)_PROXY: with a dead proxy set, both clients still answer."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, closed_port_url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert asyncio.run(loadgen.check_models(fake.base_url, MODEL, 5)) == [MODEL]
    report = load(fake.base_url, requests=2)
    assert report.count == 2 and report.errors == 0


def test_check_models_names_what_is_served_when_the_model_is_missing(fake: FakeOpenAI) -> None:
    with pytest.raises(SmokeTestFailed) as info:
        asyncio.run(loadgen.check_models(fake.base_url, "llama", 5))
    assert f"model 'llama' not served by {fake.base_url}; served: ['tiny-mock']" in str(info.value)
    assert info.value.report == {"models": [MODEL]}


def test_check_models_hints_at_unregistered_workers_when_nothing_is_served(fake: FakeOpenAI) -> None:
    fake.config.models = []
    with pytest.raises(SmokeTestFailed, match=r"served: \[\] \(no workers registered yet\?\)"):
        asyncio.run(loadgen.check_models(fake.base_url, MODEL, 5))


def test_check_models_on_a_closed_port_is_transient(closed_port_url: str) -> None:
    with pytest.raises(TransientError, match="cannot reach"):
        asyncio.run(loadgen.check_models(closed_port_url, MODEL, 2))


# -- one request ---------------------------------------------------------------------------------
def test_streaming_request_measures_ttft_itl_and_usage_tokens(fake: FakeOpenAI) -> None:
    fake.config.ttft_s, fake.config.token_delay_s = 0.15, 0.01
    result = asyncio.run(loadgen.chat_once(fake.base_url, MODEL, "hi", 8, True, 5))
    assert result.ok and result.status == 200 and result.error is None
    assert 0.15 <= result.ttft_s < 0.15 * 4
    # single gaps jitter with scheduling; their sum spans the 7 server-side delays
    assert len(result.itl_s) == 7 and 0.05 <= sum(result.itl_s) < 7 * 0.01 * 4
    assert result.output_tokens == 8 and result.tokens_from == "usage"
    assert result.request_itl_s == pytest.approx(sum(result.itl_s) / 7)
    # the server cannot finish before its TTFT plus 7 token delays; ttft_s itself may include the
    # client's own scheduling delay on a loaded host, after which the rest arrives at once
    assert result.e2e_s >= 0.15 + 7 * 0.01


def test_streaming_without_usage_counts_content_chunks(fake: FakeOpenAI) -> None:
    fake.config.send_usage = False
    result = asyncio.run(loadgen.chat_once(fake.base_url, MODEL, "hi", 5, True, 5))
    assert result.ok and result.output_tokens == 5 and result.tokens_from == "chunks"


def test_non_streaming_request_has_ttft_equal_to_e2e_and_no_itl(fake: FakeOpenAI) -> None:
    fake.config.ttft_s = 0.1
    result = asyncio.run(loadgen.chat_once(fake.base_url, MODEL, "hi", 4, False, 5))
    assert result.ok and result.output_tokens == 4 and result.itl_s == []
    assert 0.1 <= result.ttft_s <= result.e2e_s < 0.1 * 4


@pytest.mark.parametrize("stream", [True, False])
def test_http_errors_carry_status_and_server_message(fake: FakeOpenAI, stream: bool) -> None:
    result = asyncio.run(loadgen.chat_once(fake.base_url, "llama", "hi", 4, stream, 5))
    assert not result.ok
    assert result.status == 404 and result.error == "HTTP 404: Model not found"


def test_stream_cut_before_done_is_an_error(fake: FakeOpenAI) -> None:
    fake.config.disconnect_after_tokens = 2
    result = asyncio.run(loadgen.chat_once(fake.base_url, MODEL, "hi", 8, True, 5))
    assert not result.ok and result.status == 200
    assert "RemoteProtocolError" in result.error


def test_request_deadline_turns_a_hung_server_into_a_timeout_error(fake: FakeOpenAI) -> None:
    fake.config.ttft_s = 3.0
    result = asyncio.run(loadgen.chat_once(fake.base_url, MODEL, "hi", 2, True, 0.3))
    assert not result.ok and result.error.startswith("timeout after 0.3 s")
    assert result.e2e_s < 2.0


# -- load ----------------------------------------------------------------------------------------
def test_run_load_sends_exactly_n_requests_and_honours_the_concurrency_bound(fake: FakeOpenAI) -> None:
    fake.config.ttft_s = 0.02
    report = load(fake.base_url, requests=30, concurrency=4)
    assert report.count == 30 and report.errors == 0
    assert fake.stats.chat_requests == 30
    assert fake.stats.max_inflight == 4
    assert report.output_tokens == 30 * 8
    assert report.itl_ms.n == 30  # ITL is one figure per request
    assert report.inter_chunk_ms.n == 30 * 7  # every gap between content chunks
    assert report.tokens_from == {"usage": 30, "chunks": 0}


def test_run_load_reports_ttft_near_the_configured_delay(fake: FakeOpenAI) -> None:
    fake.config.ttft_s, fake.config.token_delay_s = 0.1, 0.005
    report = load(fake.base_url, requests=8, concurrency=4)
    assert report.ttft_ms.p50 >= 100 and report.ttft_ms.p90 < 100 * 4
    assert report.itl_ms.mean >= 4 and report.itl_ms.p50 < 5 * 6  # the mean survives arrival jitter


def test_run_load_open_loop_does_not_start_requests_before_their_arrival_time(fake: FakeOpenAI) -> None:
    report = load(fake.base_url, requests=10, concurrency=10, rate=50.0)
    starts = [r.started_at for r in report.results]
    assert all(start >= i / 50.0 - 0.002 for i, start in enumerate(starts))
    assert report.wall_s >= 9 / 50.0


def test_run_load_counts_server_errors(fake: FakeOpenAI) -> None:
    fake.config.error_rate, fake.config.error_status = 0.25, 500
    report = load(fake.base_url, requests=20, concurrency=4)
    assert report.count == 20 and report.errors == 5 and report.error_rate == 0.25, [
        (r.status, r.error) for r in report.results
    ]
    failures = [r for r in report.results if not r.ok]
    assert {r.status for r in failures} == {500}
    assert {r.error for r in failures} == {"HTTP 500: injected failure"}


def test_run_load_counts_refused_connections(closed_port_url: str) -> None:
    report = load(closed_port_url, requests=3, concurrency=2)
    assert report.count == 3 and report.errors == 3
    assert all(r.status is None and r.error.startswith("connect error") for r in report.results)


def test_run_load_with_zero_requests_returns_an_empty_report(fake: FakeOpenAI) -> None:
    report = load(fake.base_url, requests=0)
    assert report.count == 0 and fake.stats.chat_requests == 0


@pytest.mark.parametrize("bad", [{"concurrency": 0}, {"requests": -1}, {"rate": 0.0}])
def test_run_load_rejects_nonsense_shapes(fake: FakeOpenAI, bad: dict) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the raised message is checked below / any ValueError is the contract
        load(fake.base_url, **bad)


# -- framings and payloads the fake never sends, from a scripted bare server -----------------------
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
DONE = b"data: [DONE]\n\n"


def event(delta: dict | None = None, compact: bool = True, **fields: Any) -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "model": MODEL, **fields}
    chunk.setdefault("choices", [] if delta is None else [{"index": 0, "delta": delta}])
    text = json.dumps(chunk, separators=(",", ":") if compact else None)
    return b"data: " + text.encode() + b"\n\n"


def chunk(data: bytes, extension: bytes = b"") -> bytes:
    return b"%x%s\r\n%s\r\n" % (len(data), extension, data)


def stream_of(*events: bytes) -> list[bytes]:
    """A 200 event stream, one HTTP chunk per event."""
    return [HEAD, *(chunk(e) for e in events), b"0\r\n\r\n"]


USAGE_3 = event(usage={"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5})


def scripted(pieces: list[bytes | None], run: Callable[[str], Awaitable[Any]]) -> tuple[Any, dict]:
    """``run(base_url)`` against a bare HTTP/1.1 server that answers every request by writing
    ``pieces`` one at a time (each arrives on its own; None hangs up); returns its result and what the
    server saw."""
    seen: dict = {"connections": 0, "request_lines": []}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["connections"] += 1
        try:
            while True:  # keep-alive: one scripted answer per request
                head = await reader.readuntil(b"\r\n\r\n")
                seen["request_lines"].append(head.split(b"\r\n", 1)[0])
                seen.setdefault("heads", []).append(head)
                await reader.readexactly(int(re.search(rb"(?i)content-length: *(\d+)", head)[1]))
                for piece in pieces:
                    if piece is None:  # hang up
                        return
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.001)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> Any:
        async with await asyncio.start_server(handle, "127.0.0.1", 0) as server:
            return await run(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")

    return asyncio.run(main()), seen


def scripted_load(
    pieces: list[bytes | None], requests: int = 2, path: str = ""
) -> tuple[loadgen.LoadReport, dict]:
    return scripted(pieces, lambda url: loadgen.run_load(
        url + path, MODEL, requests=requests, concurrency=1, max_tokens=8, prompt="hi", timeout_s=5.0))  # fmt: skip


def test_stream_framing_edge_cases_are_decoded_and_the_connection_reused() -> None:
    empty_first = event({"role": "assistant", "content": ""})  # vLLM's first chunk: no content yet
    split_event = chunk(event({"content": "b"}))  # arrives in pieces cut inside the size line and CRLFs
    pieces = [
        HEAD,
        chunk(empty_first, b";name=value"),
        *(chunk(part) for part in (event({"content": "a"})[:9], event({"content": "a"})[9:])),
        split_event[:1], split_event[1:4], split_event[4:-1], split_event[-1:],
        chunk(event({"reasoning_content": "thinking"}).replace(b"\n", b"\r\n")),
        chunk(event({}, finish_reason="length")),
        chunk(USAGE_3),
        chunk(DONE),
        b"0\r\nX-Trailer: yes\r\n\r\n",
    ]  # fmt: skip
    report, seen = scripted_load(pieces, requests=3)
    assert report.errors == 0, report.first_error()
    assert [r.output_tokens for r in report.results] == [3, 3, 3]
    assert all(len(r.itl_s) == 2 and r.ttft_s is not None for r in report.results)
    assert seen["connections"] == 1


def test_a_connection_the_server_means_to_close_is_not_reused_and_a_path_prefix_is_kept() -> None:
    closing = HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    report, seen = scripted_load([closing, *stream_of(event({"content": "a"}), DONE)[1:]], 3, "/gw/v1")
    assert report.errors == 0, report.first_error()
    assert seen["connections"] == 3
    assert seen["request_lines"] == [b"POST /gw/v1/chat/completions HTTP/1.1"] * 3


def test_a_host_header_for_a_gateway_is_sent_instead_of_the_urls() -> None:
    pieces = stream_of(event({"content": "a"}), DONE)
    report, seen = scripted(pieces, lambda url: loadgen.run_load(
        url, MODEL, requests=2, concurrency=1, max_tokens=8, prompt="hi", timeout_s=5.0,
        host="llm.example.com"))  # fmt: skip
    assert report.errors == 0, report.first_error()
    assert all(b"\r\nhost: llm.example.com\r\n" in head.lower() for head in seen["heads"])
    assert all(head.lower().count(b"\r\nhost:") == 1 for head in seen["heads"])


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "spaced"])
def test_only_non_empty_content_counts_as_a_token(compact: bool) -> None:
    # compact chunks after the first are read by byte checks, spaced ones are JSON-decoded
    events = [event({"content": "x" if i % 2 else ""}, compact) for i in range(6)]
    usage = event(compact=compact, usage={"completion_tokens": 3})
    report, _ = scripted_load(stream_of(*events, usage, DONE))
    assert report.errors == 0, report.first_error()
    assert report.results[0].output_tokens == 3 and len(report.results[0].itl_s) == 2


def test_a_server_that_hangs_up_before_answering_fails_the_request() -> None:
    report, seen = scripted_load([None])
    assert report.errors == 2 and seen["connections"] == 2
    assert {(r.status, r.error) for r in report.results} == {
        (None, "RemoteProtocolError: server disconnected without sending a response")
    }


@pytest.mark.parametrize(
    ("pieces", "error"),
    [
        (stream_of(event({"content": "a"}), event({"content": "b"}, object="chat.completion"), DONE),
         "protocol: chunk object is 'chat.completion', expected 'chat.completion.chunk'"),
        (stream_of(event({"content": "a"}), b'data: {"error":{"message":"overloaded"}}\n\n', DONE),
         "protocol: error in stream"),
        (stream_of(event({"content": "a"}), b'event: error\ndata: {"message":"overloaded"}\n\n', DONE),
         "protocol: error event in stream"),
        (stream_of(event({"content": "a"}), b"data: {not json}\n\n", DONE), "protocol: bad chunk"),
        (stream_of(event({"content": "a"}), USAGE_3), "protocol: stream ended without data: [DONE]"),
        (stream_of(event({"role": "assistant", "content": ""}), USAGE_3, DONE),
         "protocol: stream carried no content"),
        ([HEAD, b"zz\r\n"], "RemoteProtocolError: illegal chunk header"),
        ([HEAD, b"3\r\nabcd\r\n"], "RemoteProtocolError: malformed chunk footer"),
    ],
    ids=["wrong-object", "error-payload", "error-event", "bad-json", "no-done", "no-content",
         "bad-chunk-size", "bad-chunk-end"],
)  # fmt: skip
def test_stream_format_errors_fail_the_request(pieces: list[bytes], error: str) -> None:
    report, _ = scripted_load(pieces)
    assert report.count == 2 and report.errors == 2
    assert all(r.status == 200 and r.error.startswith(error) for r in report.results), report.first_error()


# -- smoke_test ----------------------------------------------------------------------------------
def test_smoke_test_takes_the_spec_smoke_section_and_returns_the_report(fake: FakeOpenAI) -> None:
    spec = SmokeSpec(
        requests=12, concurrency=3, max_tokens=6, timeout_s=5, sla=SlaSpec(min_goodput_ratio=0.9)
    )
    result = loadgen.smoke_test(fake.base_url, MODEL, spec)
    assert isinstance(result, SmokeResult) and result.passed
    assert result.models == [MODEL]
    data = result.as_dict()
    assert data["passed"] is True and data["requests"] == 12 and data["errors"] == 0
    assert data["goodput_ratio"] == 1.0
    assert fake.stats.chat_requests == 12 + 2  # the two format probes, then the load
    assert fake.stats.max_inflight <= 3


def test_smoke_test_missing_model_fails_naming_served_models(fake: FakeOpenAI) -> None:
    with pytest.raises(SmokeTestFailed, match=r"model 'llama' not served .*served: \['tiny-mock'\]"):
        loadgen.smoke_test(fake.base_url, "llama", smoke_spec())
    assert fake.stats.chat_requests == 0


def test_smoke_test_sla_breach_fails_with_the_numbers(fake: FakeOpenAI) -> None:
    fake.config.ttft_s = 0.1
    with pytest.raises(SmokeTestFailed) as info:
        loadgen.smoke_test(fake.base_url, MODEL, smoke_spec(ttft_p90_ms=20, max_error_rate=0.0))
    message, report = str(info.value), info.value.report
    assert "ttft p90" in message and "> 20 ms" in message and "12 requests, 0 errors" in message
    assert report["passed"] is False and report["ttft_ms"]["p90"] >= 100
    assert report["breaches"] and report["breaches"][0].startswith("ttft p90")


def test_smoke_test_error_rate_breach(fake: FakeOpenAI) -> None:
    # the two probes are requests 1 and 2; every 7th request fails, so the load sees errors
    fake.config.error_rate = 1 / 7
    with pytest.raises(SmokeTestFailed, match=r"error rate 0\.\d+ > 0 "):
        loadgen.smoke_test(fake.base_url, MODEL, smoke_spec(max_error_rate=0.0))


def test_smoke_test_fails_on_a_broken_stream_before_running_load(fake: FakeOpenAI) -> None:
    fake.config.disconnect_after_tokens = 1
    with pytest.raises(SmokeTestFailed, match="streaming chat completion for 'tiny-mock'"):
        loadgen.smoke_test(fake.base_url, MODEL, smoke_spec())
    assert fake.stats.chat_requests == 2


def test_smoke_test_runs_from_inside_an_event_loop(fake: FakeOpenAI) -> None:
    async def caller() -> SmokeResult:
        return loadgen.smoke_test(fake.base_url, MODEL, smoke_spec())

    assert asyncio.run(caller()).passed
