"""The spec's smaller sections: platform, model, smoke (with its SLA), canary and teardown.

Each model checks its own fields (field formats) and the rules among them (``_issues()``, which runs
once every field is valid). Pure: stdlib, pydantic, runtime.domain. The serving section is in
runtime/spec/serving.py, the target in runtime/spec/targets.py, monitoring in runtime/spec/monitoring.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from runtime.domain import secret_shapes
from runtime.spec.base import (
    BUILTIN_LLM,
    BUILTIN_MODEL,
    DEFAULT_DYNAMO_VERSION,
    MAX_PROMPT_CHARS,
    DnsLabel,
    Issue,
    NonBlank,
    Quantity,
    Ratio,
    SemVer,
    StrictModel,
    at,
    issue,
    matching,
)
from runtime.spec.secret_refs import SECRET_FIX, SecretRef

__all__ = [
    "CanarySpec",
    "GpuOperatorSpec",
    "ModelCache",
    "ModelSpec",
    "PlatformSpec",
    "SlaSpec",
    "SmokeSpec",
    "TeardownSpec",
]

SHA = re.compile(r"^[0-9a-f]{40}$")
HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


# --- platform -----------------------------------------------------------------------------------------


class GpuOperatorSpec(StrictModel):
    """The NVIDIA GPU operator (Kubernetes targets with GPU nodes)."""

    enabled: bool = Field(True, description="Install the GPU operator where the cluster has GPU nodes.")
    version: Annotated[str, matching(r"^v\d+\.\d+\.\d+$", "a GPU operator release", "v25.10.1")] = Field(
        "v25.10.1", description="GPU operator chart release, e.g. v25.10.1."
    )
    driver: Literal["auto", "install", "preinstalled"] = Field(
        "auto",
        description=(
            "Whether the operator installs the NVIDIA driver: auto follows the provider (infra/providers.yaml); "
            "install or preinstalled force it."
        ),
    )


class PlatformSpec(StrictModel):
    """The Dynamo platform of Kubernetes targets (local and ecs ignore it)."""

    dynamo_version: SemVer = Field(
        DEFAULT_DYNAMO_VERSION,
        description=('Dynamo release of the operator and runtime, quoted ("1.6.1"); 1.x.'),
    )
    chart_version: SemVer | None = Field(
        None, description=("Platform Helm chart version. Unset: the same as dynamo_version.")
    )
    operator_mode: Literal["cluster", "namespace"] = Field(
        "cluster",
        description=(
            "cluster: one shared operator for every namespace; namespace: an operator limited to the graph's namespace."
        ),
    )
    discovery_backend: Literal["kubernetes", "etcd"] = Field(
        "kubernetes",
        description=(
            "How Dynamo components find each other: Kubernetes objects, or etcd (needs etcd: true)."
        ),
    )
    nats: bool = Field(False, description="Install NATS with the platform.")
    etcd: bool = Field(False, description="Install etcd with the platform.")
    grove: bool = Field(False, description="Install and enable Grove (gang scheduling of multi-node graphs).")
    kai_scheduler: bool = Field(False, description="Install and enable the KAI scheduler.")
    gpu_operator: GpuOperatorSpec = Field(GpuOperatorSpec(), description="The NVIDIA GPU operator.")

    def chart(self) -> str:
        """The effective platform chart version."""
        return self.chart_version or self.dynamo_version

    def _issues(self) -> Iterator[Issue]:
        major = int(self.dynamo_version.split(".")[0])
        if major < 1:
            yield at(
                "dynamo_version",
                f"Dynamo {self.dynamo_version} is older than 1.0; dynadeploy renders the v1beta1 graphs "
                "and the single platform chart of Dynamo 1.x",
                f'set platform.dynamo_version to "{DEFAULT_DYNAMO_VERSION}"',
            )
        elif self.chart_version and int(self.chart_version.split(".")[0]) != major:
            yield at(
                "chart_version",
                f"chart {self.chart_version} is from another major release than Dynamo "
                f"{self.dynamo_version}; its operator would not match the graphs dynadeploy renders",
                "remove platform.chart_version (it follows dynamo_version), or use the same major version",
            )
        if self.discovery_backend == "etcd" and not self.etcd:
            yield at(
                "etcd",
                "discovery_backend is etcd but platform.etcd is false, so no etcd would be installed",
                "set platform.etcd: true, or discovery_backend: kubernetes",
            )


# --- model --------------------------------------------------------------------------------------------


class ModelCache(StrictModel):
    """The volume the model is downloaded to once and every worker reads (Kubernetes targets)."""

    size: Quantity = Field("20Gi", description='Volume size, a Kubernetes quantity ("20Gi"); at least 1Gi.')
    storage_class: DnsLabel | None = Field(
        None,
        description=(
            "StorageClass of the volume. Unset: the provider's class for the access mode (infra/providers.yaml; "
            "kube: target.provider_hints.storage_class), else the cluster's default."
        ),
    )
    access_mode: Literal["ReadWriteMany", "ReadWriteOnce", "ReadOnlyMany"] = Field(
        "ReadWriteMany", description=("Volume access mode; ReadWriteOnce attaches to one node only.")
    )


class ModelSpec(StrictModel):
    """The model served."""

    id: str = Field(
        BUILTIN_MODEL,
        description=(
            f"Hugging Face id 'org/name', or {BUILTIN_MODEL} (built-in, tokenizer only: the mocker serves it) or "
            f"{BUILTIN_LLM} (a tiny random-weight Llama built locally)."
        ),
    )
    revision: NonBlank | None = Field(
        None,
        description=(
            "The Hugging Face commit sha (40 hex) to serve; required for Hugging Face models, none for built-ins."
        ),
    )
    served_name: Annotated[str, matching(r"^\S{1,256}$", "a model name without spaces", "qwen3")] | None = (
        Field(None, description="The name clients send as the OpenAI `model` field. Unset: the id.")
    )
    cache: ModelCache = Field(ModelCache(), description="The model cache volume (Kubernetes targets).")
    token: SecretRef | None = Field(
        None,
        description=(
            "Hugging Face token for gated models, as a reference ({secret_block: ...} or {env: ...}), never inline."
        ),
    )

    def is_builtin(self) -> bool:
        return self.id == BUILTIN_MODEL

    def is_builtin_llm(self) -> bool:
        """The built-in tiny Llama (random weights, built locally): servable by a real vLLM."""
        return self.id == BUILTIN_LLM

    def served(self) -> str:
        """The model name clients send (the OpenAI `model` field): served_name, else the id."""
        return self.served_name or self.id

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if value not in (BUILTIN_MODEL, BUILTIN_LLM) and not HF_ID.match(value):
            raise issue(
                f"{secret_shapes.shown(value)} is neither the built-in model nor a Hugging Face id 'org/name'",
                f"set {{path}} to {BUILTIN_MODEL} or an id like Qwen/Qwen3-0.6B",
            )
        return value

    @field_validator("token", mode="before")
    @classmethod
    def _token(cls, value: Any) -> Any:
        if isinstance(value, str | bytes | int | float):
            raise issue("model.token is an inline secret value (not shown here)", SECRET_FIX)
        return value

    def _issues(self) -> Iterator[Issue]:
        builtin = self.is_builtin() or self.is_builtin_llm()
        if builtin and self.revision is not None:
            yield at("revision", "the built-in model has no revisions", "remove model.revision")
        if not builtin and self.revision is None:
            yield at(
                "revision",
                f"Hugging Face model {self.id} has no pinned revision, so two runs could serve "
                "different weights",
                "set model.revision to the model's 40-hex commit sha "
                f"(https://huggingface.co/{self.id}/commits/main)",
            )


# --- smoke test, canary, teardown ---------------------------------------------------------------------


class SlaSpec(StrictModel):
    """The targets the smoke test judges (and monitoring alerts on): latency percentiles and error rate."""

    ttft_p90_ms: float = Field(default=2000, gt=0, description="Time to first token, 90th percentile, in ms.")
    itl_p90_ms: float = Field(
        default=200,
        gt=0,
        description=(
            "Inter-token latency, 90th percentile of each request's mean gap between tokens, in ms."
        ),
    )
    e2e_p99_ms: float = Field(
        default=10000, gt=0, description="Whole-request latency, 99th percentile, in ms."
    )
    max_error_rate: Ratio = Field(0.0, description="Share of failed requests allowed (0.0 to 1.0).")
    min_goodput_ratio: Ratio = Field(
        0.95, description=("Share of requests that must meet both the TTFT and the ITL target (0.0 to 1.0).")
    )


class SmokeSpec(StrictModel):
    """The load test after every rollout: a fixed number of streamed chat requests, judged against the SLA."""

    requests: int = Field(default=40, ge=1, le=10000, description="Requests sent.")
    concurrency: int = Field(
        default=8, ge=1, le=512, description="Requests in flight at once (at most requests)."
    )
    max_tokens: int = Field(default=32, ge=1, le=8192, description="Tokens each request asks for.")
    # Bounded: every smoke request sends it, a served model's context is a few thousand tokens, and a
    # 10 MB prompt pasted here would be sent (and tokenized) requests x times before failing.
    prompt: Annotated[NonBlank, Field(max_length=MAX_PROMPT_CHARS)] = Field(
        "Hello from dynadeploy",
        description=f"The prompt of every request (at most {MAX_PROMPT_CHARS} characters).",
    )
    timeout_s: float = Field(
        default=60, gt=0, le=3600, description="Seconds one request may take before it counts as failed."
    )
    sla: SlaSpec = Field(SlaSpec(), description="The targets the results are judged against.")

    def _issues(self) -> Iterator[Issue]:
        if self.concurrency > self.requests:
            yield at(
                "concurrency",
                f"concurrency {self.concurrency} is more than the {self.requests} requests to send",
                f"set smoke.concurrency to {self.requests} or less, or raise smoke.requests",
            )


class CanarySpec(StrictModel):
    """How a candidate is staged, measured and judged against stable (README "Canary", runtime/domain/canary.py).

    The side-by-side gate judges each latency p90 on evidence: it fails a candidate only when a bootstrap
    interval of the p90 change lies wholly above the allowed change and a Mann-Whitney rank test agrees;
    it passes when the change is within the allowed one or within noise; otherwise it is inconclusive and
    the step is measured again with the samples pooled (``holds`` times) before it fails.
    """

    analysis_interval_s: int = Field(
        default=30,
        ge=1,
        le=3600,
        description="Seconds one analysis may take: the per-request timeout of its load (a request "
        "still unanswered then counts as failed).",
    )
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default=[10, 50, 100],
        min_length=1,
        description="Traffic percentages the candidate takes in turn, strictly increasing and ending with "
        "100 (promotion). Before them comes a side-by-side analysis on identical load.",
    )
    requests_per_step: int = Field(
        default=40,
        ge=1,
        le=10000,
        description="Requests sent per side in one analysis (the smoke concurrency, max_tokens and prompt). "
        "A p90 is judged from 29 successful requests per side on, so below that a step "
        "always holds for more.",
    )
    max_ttft_regression: float = Field(
        default=0.2,
        ge=0,
        le=10,
        description="How much slower the candidate's time-to-first-token p90 may be, as a fraction of "
        "stable's (0.2 = 20 %); changes under ttft_floor_ms never count.",
    )
    max_itl_regression: float = Field(
        default=0.2,
        ge=0,
        le=10,
        description="The same for the inter-token latency p90 (each request's mean gap between tokens); "
        "changes under itl_floor_ms never count.",
    )
    max_error_rate: Ratio = Field(
        default=0.0,
        description="The candidate's failed-request share that is tolerated (0.0: none beyond stable's). "
        "More fails the step only if it is also over 1 point above stable's and Fisher's exact "
        "test says it is not chance; else the step holds for more samples.",
    )
    min_samples: int = Field(
        default=20,
        ge=1,
        description="Successful requests per side before latency is judged; the gate never uses fewer "
        "than 29 (the fewest for which the largest sample bounds the p90 with 95 % confidence).",
    )
    ttft_floor_ms: float | None = Field(
        default=None,
        ge=0,
        le=60000,
        description="Absolute floor in ms (unset: 10): a TTFT p90 change smaller than this never counts "
        "as a regression, whatever its percentage.",
    )
    itl_floor_ms: float | None = Field(
        default=None, ge=0, le=60000, description="Absolute floor in ms (unset: 2) for the ITL p90 change."
    )
    confidence: float | None = Field(
        default=None,
        ge=0.5,
        le=0.999,
        description="Confidence of the gate's statistics (unset: 0.95): the bootstrap interval's level, and "
        "1 - confidence is the p-value under which the rank and Fisher tests count.",
    )
    holds: int | None = Field(
        default=None,
        ge=0,
        le=10,
        description="Extra analyses an inconclusive step gets, each pooled with the earlier samples, "
        "before the candidate is withdrawn as unproven (unset: 2).",
    )

    def _issues(self) -> Iterator[Issue]:
        steps = self.steps
        for i in range(1, len(steps)):
            if steps[i] <= steps[i - 1]:
                yield at(
                    f"steps[{i}]",
                    f"canary steps must strictly increase, but {steps[i]} follows {steps[i - 1]}",
                    "list traffic percents in increasing order, e.g. [10, 50, 100]",
                )
        if steps[-1] != 100:
            yield at(
                f"steps[{len(steps) - 1}]",
                f"the last canary step is {steps[-1]}%, so the candidate would never take all traffic",
                "end canary.steps with 100",
            )
        if self.min_samples > self.requests_per_step:
            yield at(
                "min_samples",
                f"min_samples {self.min_samples} can never be reached with {self.requests_per_step} "
                "requests per step",
                f"set canary.min_samples to {self.requests_per_step} or less, or raise canary.requests_per_step",
            )


class TeardownSpec(StrictModel):
    """What `dynadeploy teardown` (and a failed deploy) removes."""

    on_failure: bool = Field(False, description="Tear everything down when a deploy fails.")
    keep_model_cache: bool = Field(
        True, description=("Keep the downloaded model cache on teardown (on Kubernetes, its namespace too).")
    )
    keep_namespace: bool = Field(False, description="Keep the graph's Kubernetes namespace on teardown.")
