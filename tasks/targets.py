"""The tasks' one way to a target: its backend, built with the cloud credentials resolved here (inside the
task that uses them), and its canary mechanics. The tasks and flows depend on the seam's types only
(runtime/targets/base.py), never on a target's own classes."""

from __future__ import annotations

from runtime.targets.base import CanaryMechanics, ServingBackend
from runtime.targets.registry import backend_for, canary_for
from tasks.secrets import resolve_cloud_credentials


def backend(spec) -> ServingBackend:
    """``spec``'s backend; where the spec names a credentials block, with the block's credentials."""
    return backend_for(spec, credentials=resolve_cloud_credentials(spec))


def mechanics(spec) -> CanaryMechanics:
    """``spec``'s canary mechanics (a NotSupportedError naming what the target lacks where it has none)."""
    return canary_for(spec)
