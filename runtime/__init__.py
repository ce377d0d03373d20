"""dynadeploy's library: the spec, the decisions, the renderers and the effects that tasks/ calls.

Packages, each importing only those below it (import-linter contracts in pyproject.toml, checked by
`uv run lint-imports` and tests/unit/test_architecture.py):

    targets/    one package per target kind (local/, kube/, cloud/, ecs/), the ServingBackend seam, the registry
    providers/  the ClusterProvider seam and the clouds that make clusters (EKS, GKE, AKS)
    gateways/   every SDK, HTTP client and subprocess   |   render/  pure renderers (manifests, charts, rules)
    host/       the machine: state home, loopback ports, processes
    spec/       the user's spec: pydantic models, their rules, loading
    domain/     pure vocabulary and decisions (naming, revisions, SLA, canary gate, metrics)

Beside them, usable from every layer: errors.py (the error tree) and settings.py (every DYNADEPLOY_*
variable). gateways and render are siblings: neither imports the other.
"""
