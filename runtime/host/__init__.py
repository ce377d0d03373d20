"""The machine dynadeploy runs on: its state home, its loopback ports, its processes.

Below the targets and the gateways: the CLI's Prefect server (runtime/gateways/prefect_server.py),
the local target, the target lock (flows/_lock.py) and the cloud/ECS targets' state directories
all build on it. Plain os/socket//proc code: no SDK, no subprocess, no HTTP client, and nothing
about any one target (a local deployment's layout and ownership stay in runtime/targets/local/).
"""
