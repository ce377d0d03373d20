"""A Kubernetes API simulator that the real helm (3 and 4), kubectl and the kubernetes Python client talk to
over HTTP on 127.0.0.1. See tests/harness/README.md for what it simulates and what it does not.

    from tests.harness.kubeapi import Simulator
    with Simulator() as sim:
        sim.write_kubeconfig(tmp / "kubeconfig")
        ...

Module map: simulator (thread + controllers), server (middleware, discovery, /_sim), handlers (resource
verbs), routing, store (objects, events), gc (deletion, finalizers, GC), semantics (defaults, names),
patch (merge / JSON / strategic), fieldsets (managedFields, server-side apply), watch, codec (content
negotiation, Table), protobuf, openapi, discovery (resource tables, CRDs), selectors, faults (faults,
request log), helmrelease (release Secrets), kubeconfig, controllers_basic.
"""

from .controllers_basic import BasicControllers
from .errors import ApiError
from .faults import FaultRule, Faults, RequestLog
from .simulator import Controller, Simulator
from .store import Event, Store

__all__ = ["ApiError", "BasicControllers", "Controller", "Event", "FaultRule", "Faults", "RequestLog",
           "Simulator", "Store"]
