"""The local target's workers among a deployment's programs: which programs are workers, the versions a
revision records for them, and what a worker that crashed at start said.
"""

from __future__ import annotations

import re
from importlib import metadata

from runtime.render.local_plan import cpu_vllm, worker_program_names
from runtime.targets.local import vllm_cpu


def is_worker(name: str) -> bool:
    # canary-<i> workers (runtime/targets/local/canary.py) are retired with the old revision on promotion
    return name.split("-", 1)[0] in ("worker", "prefill", "decode", "canary")


def zero_ports(spec, revision: int) -> dict[str, int]:
    """Port 0 for every worker of ``revision``: renders programs whose fingerprint ignores their ports."""
    return dict.fromkeys(worker_program_names(spec, revision), 0)


def versions(engine: str, spec=None) -> dict:
    """What the workers run, as the revision records it: the engine and its packages' versions."""
    out = {"engine": engine}
    if engine == "vllm" and spec is not None and cpu_vllm(spec):
        # the workers run in the CPU vLLM runtime: its packages, not this environment's
        out["device"] = "cpu"
        out |= {("vllm" if k == "vllm-cpu" else k): v for k, v in vllm_cpu.find().versions.items()}
        out["vllm-cpu"] = out.get("vllm", "")
        return out
    for pkg in ("ai-dynamo", "ai-dynamo-runtime", "vllm"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def engine_error(log: str, keep: int = 2000) -> str:
    """The engine's own message from a crashed worker's log: the exception line of the last traceback and
    what follows it, indented (e.g. vLLM's pydantic ValidationError about an engine argument), without
    the traceback frames or the health-probe noise around it; else the log's end."""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", log).splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if starts:
        for i in range(starts[-1] + 1, len(lines)):
            if lines[i] and not lines[i][0].isspace():  # the exception line ends the indented frames
                end = i + 1
                while end < len(lines) and lines[end][:1].isspace():
                    end += 1
                return "\n".join(lines[i:end])[:keep]
    return "\n".join(lines)[-keep:]
