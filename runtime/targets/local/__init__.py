"""The local target: a real Dynamo stack (frontend + workers, optional etcd/NATS) as supervised processes.

Everything a deployment owns lives under one state directory (see paths.py); processes are run by a
per-deployment supervisord so the stack keeps serving, and crashed workers come back, after the
flow that started it has returned.
"""
