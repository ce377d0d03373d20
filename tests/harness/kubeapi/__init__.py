"""A Kubernetes API simulator that the real helm (3 and 4), kubectl and the kubernetes Python client talk to
over HTTP on 127.0.0.1. Its README.md (beside this file) is the index: the full lists of what it simulates
and what it does not, its modules and public entry points. It imports nothing of the project it tests.

Simulated: discovery (incl. aggregated, CRD-driven), a validation-free OpenAPI v3, CRUD/list/watch with
selectors, limit/continue, resourceVersion conflicts, generation, status/scale/log subresources, merge/
JSON/strategic patches, server-side apply with field managers, finalizers, ownerReference GC and
namespace cascade, Status errors, protobuf for Secrets/ConfigMaps and friends, faults, a request log.

NOT simulated: admission webhooks and plugins, schema validation, authentication/RBAC enforcement,
scheduling/kubelet/pods/networking (only what controllers write), version conversion, full SSA field
ownership (per-leaf, single merge keys, atomic CR lists), GC asynchrony, consistent list snapshots.

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

__all__ = [
    "ApiError",
    "BasicControllers",
    "Controller",
    "Event",
    "FaultRule",
    "Faults",
    "RequestLog",
    "Simulator",
    "Store",
]
