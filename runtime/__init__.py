"""dynadeploy's library: pure spec/render/decision modules and the effect gateways the tasks call.

Pure modules (no I/O beyond reading a spec file, no SDK imports): spec, errors, naming, render, sla,
revisions. Effect modules import their SDKs lazily: loadgen, toolchain, helm, kube, local/, providers/.
tests/unit/test_layers.py keeps that split honest.
"""
