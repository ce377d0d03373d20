"""Pure vocabulary and decisions, the bottom layer: what the other layers name, measure and decide.

Naming, capabilities, revisions, Prometheus metrics and histograms, load reports and SLA verdicts, the
canary plan, statistics and gate, rollout readiness, the SLO vocabulary and status, secret shapes,
credentials, wait_until. Tested without any server.

Imports nothing of runtime but errors and other domain modules: not the spec (spec sections arrive
duck-typed, read with sla.read_field), not render, gateways, host or targets; and no SDK, HTTP client
library, Prefect, subprocess or socket (the pure-packages contract).
"""
