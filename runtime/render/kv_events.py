"""What a worker needs so that a KV-cache-aware router (``--router-mode kv``) sees its cache: the one
place that renders the KV-events flags, for every target (kube DGD, local processes, ECS tasks) and
both engines.

- vLLM (Dynamo 1.6.1 ``dynamo.vllm``): publishes no KV events unless ``--kv-events-config`` says so
  (``create_kv_events_config`` returns None without it, so the router falls back to load only). Dynamo's
  own graphs (examples/backends/vllm/deploy/{agg_router,disagg_router}.yaml) pass
  ``{"publisher":"zmq","topic":"kv-events","endpoint":"tcp://*:20080","enable_kv_cache_events":true}``
  to the aggregated workers and to the prefill workers; their decode workers get none (the router
  picks decode workers on load). The engine binds the ZMQ endpoint and Dynamo relays it to the event
  plane; a pod has its own network, so the kube graph uses Dynamo's endpoint as is. Where several
  workers share a host's network (the local target, ECS tasks with host networking) each worker gets
  an ``ipc://`` endpoint of its own instead of one TCP port they would fight over.
- mocker (``dynamo.mocker``): publishes KV events itself when prefix caching is on and it is not a
  decode worker (``kv_event_publishing_enabled = enable_prefix_caching and not is_decode``); it is
  rendered explicitly (``--enable-prefix-caching``) so the graph says what the router relies on.

Flags the spec's ``engine_args`` already set win (the caller drops ours then).
"""

from __future__ import annotations

import json

KV_EVENTS_PORT = 20080  # Dynamo's examples
PUBLISHING_ROLES = ("worker", "prefill")  # decode workers publish none (Dynamo's disagg_router example)


def kv_events_config(endpoint: str = f"tcp://*:{KV_EVENTS_PORT}") -> str:
    """The ``--kv-events-config`` JSON, key for key in the order of Dynamo's examples."""
    return json.dumps(
        {"publisher": "zmq", "topic": "kv-events", "endpoint": endpoint, "enable_kv_cache_events": True},
        separators=(",", ":"),
    )


def worker_args(
    router_mode: str,
    engine: str,
    role: str,
    *,
    endpoint: str | None = None,
    given: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """The flags a ``role`` worker of ``engine`` needs for ``router_mode``; [] when the router is not
    the KV router or the role publishes nothing. ``endpoint``: the vLLM ZMQ endpoint (default Dynamo's
    ``tcp://*:20080``); ``given``: the spec's engine_args (a flag set there is not rendered again)."""
    if router_mode != "kv" or role not in PUBLISHING_ROLES:
        return []
    have = {arg.split("=", 1)[0] for arg in given if arg.startswith("--")}
    if engine == "vllm":
        if "--kv-events-config" in have or "--no-enable-prefix-caching" in have:
            return []
        return ["--kv-events-config", kv_events_config(endpoint or f"tcp://*:{KV_EVENTS_PORT}")]
    if "--enable-prefix-caching" in have or "--no-enable-prefix-caching" in have:
        return []
    return ["--enable-prefix-caching"]


def ipc_endpoint(*parts: str) -> str:
    """A per-process ``ipc://`` endpoint under /tmp (well under the 107-byte socket path limit)."""
    name = "-".join(p for p in parts if p)[:80]
    return f"ipc:///tmp/dynamo-kv-{name}"
