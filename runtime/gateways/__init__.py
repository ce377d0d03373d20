"""The effects: the only modules that import an SDK, an HTTP client or subprocess.

One outside system per module (Kubernetes, Helm, AWS, GCP, Azure, the Hugging Face Hub, supervisord, the
Prefect server and API, a served model's HTTP/SSE endpoints, Prometheus scrapes, port-forwards, the CLI
tools), wrapped in plain functions and classes that return data the layers above understand.

A sibling of render/: neither imports the other; both build on host/, spec/ and domain/. What does not
belong here: decisions (domain/), manifests (render/), a target's stages or state (targets/).
"""
