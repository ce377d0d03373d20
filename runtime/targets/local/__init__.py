"""The local target: a real Dynamo stack (frontend + workers, optional etcd/NATS) as supervised processes.

Everything a deployment owns lives under one state directory (see paths.py); processes are run by a
per-deployment supervisord so the stack keeps serving, and crashed workers come back, after the
flow that started it has returned.

backend.py (the ServingBackend stages) builds on: paths.py (the deployment's layout), ports.py (its
ports.json), supervisor.py (its supervisord and programs), inventory.py (which processes are its own),
workers.py, monitoring.py (Prometheus + Alertmanager + alert receiver), model_cache.py (with the
built-in tiny_model.py / tiny_llama.py), ledger.py, vllm_cpu.py; canary.py holds the canary mechanics.
The machine itself (state home, loopback ports, processes) is runtime/host/; supervisord's and the
Hugging Face Hub's clients are runtime/gateways/supervisor.py and runtime/gateways/huggingface.py.
"""
