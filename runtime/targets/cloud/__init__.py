"""The ``eks``, ``gke`` and ``aks`` targets: a cloud provider (runtime/providers/) makes the cluster, the
kube target's stages (runtime/targets/kube/) run on it.

Builds on kube only: never on the local or ecs targets. Cloud SDKs are reached through the providers and
runtime/gateways/, never imported here.
"""
