"""The ``ecs`` target: Dynamo on Amazon ECS, no Kubernetes.

backend.py holds the ServingBackend stages, provider.py the AWS side (roles, network, the clusters, GPU
capacity, Cloud Map), serving.py the services and task definitions (rendered by runtime/render/ecs_task.py),
revisions.py which task definition revision a service runs. The AWS SDK is reached through
runtime/gateways/aws.py, never imported here; the other targets' packages are not this one's to import.
"""
