"""The ``kube`` target: a DynamoGraphDeployment on an existing Kubernetes cluster from a kubeconfig.

Its stages (backend.py), canary mechanics, platform charts, preflight checks and routes. The cluster and
Helm are reached through runtime/gateways/kube.py and helm.py; the manifests come from runtime/render/.
The cloud targets build on this package; it imports no other target.
"""
