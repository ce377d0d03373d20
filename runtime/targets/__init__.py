"""The targets: where a spec is served, the top layer of runtime/.

base.py is the ServingBackend / CanaryMechanics seam and the typed results of each stage; registry.py
says which backend serves a target kind (imported lazily). One package per kind: local/ (supervised
processes on this machine), kube/ (an existing cluster), cloud/ (EKS/GKE/AKS: a provider + kube), ecs/.

A target composes the layers below (providers, gateways, render, host, spec, domain) into stages. Targets
do not reach into each other (cloud builds on kube only), and none imports an SDK, an HTTP client or
subprocess itself: that is the gateways' job.
"""
