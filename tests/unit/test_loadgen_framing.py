"""The load generator's framing, cut every way a network can cut it, against a real loopback server.

A bare asyncio HTTP/1.1 server on 127.0.0.1 answers each request with one fixed, valid byte stream
(response head, chunked or Content-Length body, SSE events), written in pieces: request k of a run
is cut at the split points ``plan(k)`` gives, with a pause after each piece. Server and client share
one event loop, so each pause lets the client's transport read exactly the bytes written so far: the
pieces arrive as separate socket reads. Every request must succeed with the same token count and the
same number of content chunks, and keep-alive must survive (one connection per worker), whatever
the cuts: inside the status line or a header, inside a chunk-size line, inside chunk data, between
the data and its CRLF, inside an SSE line, between an event's two newlines, several chunks per read,
and one byte at a time.

The first test is the reproduction of the defect of the hand-written decoder this client replaced
(runtime/gateways/loadgen.py before httpx): a chunk split across two reads after an earlier chunk of the same
read was consumed. It fails on that code (timeout or "chunk data not followed by CRLF").
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
from collections.abc import Callable, Sequence

import pytest

from runtime.gateways import loadgen

MODEL = "tiny-mock"
PAUSE_S = 0.001  # long enough for the loop to poll the client's socket between two pieces


# -- the byte streams ----------------------------------------------------------------------------------
def event(delta: dict | None = None, *, eol: bytes = b"\n", **fields: object) -> bytes:
    chunk = {"object": "chat.completion.chunk", **fields}  # no id or model: fewer bytes, fewer cuts
    chunk.setdefault("choices", [] if delta is None else [{"index": 0, "delta": delta}])
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + eol + eol


def events(eol: bytes = b"\n") -> list[bytes]:
    """What Dynamo's frontend sends for 3 tokens: an empty role delta, 3 content deltas, the finish
    chunk, the usage chunk, [DONE]."""
    return [
        event({"role": "assistant", "content": ""}, eol=eol),
        *(event({"content": t}, eol=eol) for t in ("a", "b", "c")),
        event({}, eol=eol, finish_reason="length"),
        event(eol=eol, usage={"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}),
        b"data: [DONE]" + eol + eol,
    ]


def chunked(
    body_pieces: Sequence[bytes], extension: bytes = b"", trailer: bytes = b"", size: bytes = b"%x"
) -> bytes:
    framed = b"".join(size % len(p) + extension + b"\r\n" + p + b"\r\n" for p in body_pieces)
    return framed + b"0\r\n" + trailer + b"\r\n"


def head(**headers: str) -> bytes:
    lines = [b"HTTP/1.1 200 OK", *(f"{k.replace('_', '-')}: {v}".encode() for k, v in headers.items())]
    return b"\r\n".join(lines) + b"\r\n\r\n"


SSE_HEAD = head(Content_Type="text/event-stream", Transfer_Encoding="chunked")
COMPLETION = json.dumps({
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "abc"}, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
}).encode()  # fmt: skip

CR_EVENTS = b"".join(events(b"\r"))
STREAMS: dict[str, tuple[bytes, bool]] = {  # name -> (whole response, streamed)
    # one HTTP chunk per SSE event, LF line ends: how Dynamo's frontend (and vLLM's) send it
    "chunk-per-event-lf": (SSE_HEAD + chunked(events()), True),
    # CRLF line ends, a chunk extension on every chunk, a trailer after the last
    "chunk-per-event-crlf-ext-trailer": (
        SSE_HEAD + chunked(events(b"\r\n"), b";ext=1", b"X-Trailer: yes\r\n"),
        True,
    ),
    # CR-only line ends (legal SSE), chunks cut across events in 37-byte slices
    "cr-events-37-byte-chunks": (
        SSE_HEAD + chunked([CR_EVENTS[i : i + 37] for i in range(0, len(CR_EVENTS), 37)]),
        True,
    ),
    # all events in one chunk, then a keep-alive comment; upper-case hex sizes
    "one-chunk-then-comment": (
        SSE_HEAD + chunked([b"".join(events()), b": keep-alive" + b"-" * 28 + b"\n\n"], size=b"%X"),
        True,
    ),
    # a non-streaming completion: Content-Length body, then a chunked one
    "completion-content-length": (
        head(Content_Type="application/json", Content_Length=str(len(COMPLETION))) + COMPLETION,
        False,
    ),
    "completion-chunked": (
        head(Content_Type="application/json", Transfer_Encoding="chunked")
        + chunked([COMPLETION[:100], COMPLETION[100:]]),
        False,
    ),
}


def test_the_streams_are_what_they_claim() -> None:
    whole, _ = STREAMS["chunk-per-event-crlf-ext-trailer"]
    assert b"\r\n\r\n" in whole and b";ext=1\r\n" in whole and whole.endswith(b"0\r\nX-Trailer: yes\r\n\r\n")
    assert b"\r\r" in STREAMS["cr-events-37-byte-chunks"][0]
    assert re.search(rb"\r\n[0-9]*[A-F][0-9A-F]*\r\n", STREAMS["one-chunk-then-comment"][0])


# -- the server and the run ----------------------------------------------------------------------------
Plan = Callable[[int], list[int]]  # request number -> split offsets


def serve_and_load(
    whole: bytes, plan: Plan, requests: int, *, stream: bool, concurrency: int = 1, hang_up: bool = False
) -> tuple[loadgen.LoadReport, dict]:
    """``run_load`` against a server that writes ``whole`` cut at ``plan(k)`` for request k (and
    closes the connection after it when ``hang_up``)."""
    seen = {"connections": 0, "requests": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["connections"] += 1
        try:
            while True:
                request_head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(re.search(rb"(?i)content-length: *(\d+)", request_head)[1]))
                k = seen["requests"]
                seen["requests"] += 1
                cuts = [0, *sorted(set(plan(k))), len(whole)]
                for start, end in itertools.pairwise(cuts):
                    if end > start:
                        writer.write(whole[start:end])
                        await writer.drain()
                        await asyncio.sleep(PAUSE_S)
                if hang_up:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> loadgen.LoadReport:
        async with await asyncio.start_server(handle, "127.0.0.1", 0) as server:
            url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            return await loadgen.run_load(
                url, MODEL, requests=requests, concurrency=concurrency, max_tokens=3, prompt="hi",
                timeout_s=10.0, stream=stream,
            )  # fmt: skip

    return asyncio.run(main()), seen


def assert_all_decoded(report: loadgen.LoadReport, seen: dict, stream: bool, concurrency: int = 1) -> None:
    bad = [(i, r.error) for i, r in enumerate(report.results) if not r.ok]
    assert not bad, f"{len(bad)} of {report.count} requests failed; first (request, error): {bad[:3]}"
    assert all(r.output_tokens == 3 for r in report.results)
    if stream:
        assert all(r.content_chunks == 3 and len(r.itl_s) == 2 for r in report.results)
        assert all(r.tokens_from == "usage" and r.ttft_s is not None for r in report.results)
    # every exchange ended cleanly, so the connections were reused throughout (one per worker; with
    # several workers httpcore's pool may open a few more when requests queue at the same instant: it
    # can offer one idle connection to two of them, and the one that loses opens another)
    assert seen["connections"] <= (1 if concurrency == 1 else 2 * concurrency), seen


# -- the old defect ------------------------------------------------------------------------------------
def test_a_chunk_split_across_reads_after_an_earlier_chunk_was_consumed_is_decoded() -> None:
    """Read 1: the head, chunk 1 whole and chunk 2's size line with part of its data; read 2: the rest.
    The hand-written decoder kept chunk 2's offsets across the refill that moved its buffer."""
    whole, _ = STREAMS["chunk-per-event-lf"]
    first_chunk_end = whole.index(b"\r\n", len(SSE_HEAD)) + 2 + len(events()[0]) + 2
    cut = first_chunk_end + 4 + 20  # "7a\r\n" + 20 bytes of chunk 2's data

    report, seen = serve_and_load(whole, lambda k: [cut], requests=3, stream=True)
    assert report.errors == 0, report.first_error()
    assert [r.output_tokens for r in report.results] == [3, 3, 3]
    assert seen["connections"] == 1


# -- every split point ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(STREAMS))
def test_every_single_split_point_of_every_stream(name: str) -> None:
    whole, stream = STREAMS[name]
    # request k is cut at offset k + 1: every offset from after the first byte to before the last
    report, seen = serve_and_load(
        whole, lambda k: [k + 1], requests=len(whole) - 1, stream=stream, concurrency=16
    )
    assert seen["requests"] == len(whole) - 1
    assert_all_decoded(report, seen, stream, concurrency=16)


@pytest.mark.parametrize("name", [n for n, (_, s) in STREAMS.items() if s])
def test_random_multi_way_splits_several_chunks_per_read_and_a_tail(name: str) -> None:
    whole, _ = STREAMS[name]
    rng = random.Random(name)
    plans = [[]] + [rng.sample(range(1, len(whole)), rng.randint(2, 12)) for _ in range(60)]
    report, seen = serve_and_load(whole, lambda k: plans[k], requests=len(plans), stream=True, concurrency=4)
    assert_all_decoded(report, seen, True, concurrency=4)


@pytest.mark.parametrize(
    ("name", "requests"), [("chunk-per-event-lf", 2), ("chunk-per-event-crlf-ext-trailer", 1)]
)
def test_a_slow_trickle_one_byte_per_read(name: str, requests: int) -> None:
    whole, _ = STREAMS[name]
    report, seen = serve_and_load(whole, lambda k: list(range(1, len(whole))), requests=requests, stream=True)
    assert_all_decoded(report, seen, True)


def test_a_stream_cut_inside_a_chunk_and_closed_fails_as_a_protocol_error() -> None:
    """The other side of the coin: a complete-looking prefix is not a complete response."""
    whole, _ = STREAMS["chunk-per-event-lf"]
    for cut in (len(SSE_HEAD) + 3, len(whole) // 2, len(whole) - 3):
        report, _ = serve_and_load(
            whole[:cut], lambda k, cut=cut: [cut // 2], requests=1, stream=True, hang_up=True
        )
        assert report.errors == 1 and report.results[0].status == 200
        error = report.results[0].error
        assert error.startswith("RemoteProtocolError: peer") and "closed connection" in error, (cut, error)
