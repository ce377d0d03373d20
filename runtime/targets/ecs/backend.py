"""The ``ecs`` target's stages: Dynamo's ECS layout, no Kubernetes (runtime/targets/ecs/provider.py does the AWS side).

provision      EcsProvider.ensure_cluster (roles, VPC, security group, the GPU EC2 and Fargate clusters, the
               Cloud Map namespace with the etcd and nats discovery services), then ensure_gpu_nodes (launch
               template, Auto Scaling group, capacity provider)
detect_gpus    from the spec: nothing can look at an instance's GPUs before a task runs on it; the engine is
               the spec's (auto: vLLM when every worker asks for GPUs and the model has weights); the ECS
               GPU-optimized AMI ships the driver, so there is no GPU operator
install_platform  etcd and NATS as Fargate services registered in Cloud Map (found as etcd.<ns> / nats.<ns>)
cache_model    nothing is cached: ECS has no shared model volume, each worker downloads the pinned revision
               when it starts (HF_HOME in the task). The HF token, when the spec has one, is stored here as a
               Secrets Manager secret the task definitions reference (never passed as a plain env value)
roll_out       EcsServing.converge (a new task definition revision only when the rendering changed), then the
               services' steady state (runningCount == desiredCount, one deployment). The revision ledger is
               SSM parameters ``/dynadeploy/<deployment id>/revisions/<n>`` (JSON, zlib+base64 when large),
               tagged with the deployment id; rendered = the task definition ARNs of the revision.
               Rollback (task definition revisions): the ARNs the ledger recorded for the spec being rolled
               out are offered to converge, so a rollback points the services back at revision N's task
               definitions while they are ACTIVE, and registers from the recorded spec only those that
               were deregistered (Rollout.note says which)
endpoint/reach the frontend task's instance address (EcsServing.frontend_address), waited for in reach()
teardown       EcsProvider.delete_cluster (which drains and deletes the services first) and the ledger
inventory      the provider's inventory by tag plus the ledger's parameters
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import shutil
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from runtime import settings
from runtime.domain import naming
from runtime.domain.revisions import Revision, current, next_number, now_iso
from runtime.domain.waiting import WaitTimeout, wait_for_value
from runtime.errors import PermanentError, RolloutFailed, TransientError
from runtime.gateways.aws import tag_list
from runtime.host.home import home
from runtime.providers.base import ClusterRef
from runtime.render import cloud_plan as plan
from runtime.render import ecs_task as ecs_render
from runtime.render.dgd import resolve_engine
from runtime.targets.base import (
    Accelerators,
    PlatformEndpoint,
    Provisioned,
    RevisionRow,
    Rollout,
    Status,
    TeardownReport,
)
from runtime.targets.ecs.revisions import recorded_task_definitions, restore_note

log = logging.getLogger("dynadeploy.ecs")
_NF_PARAM = ("ParameterNotFound",)
SSM_STANDARD_LIMIT = 4096


def _timeout(name: str, default: float) -> float:
    return settings.ecs_timeout_s(name, default)


def make_provider(spec: Any = None, credentials: Any = None) -> Any:
    """The cached ECS provider (with the spec's resolved credentials block, when it names one)."""
    from runtime.providers import access

    return access.make_provider("ecs") if spec is None else access.provider_with(spec, credentials)


@dataclass(frozen=True)
class EcsModel:
    """cache_model() on ECS (a runtime.targets.base.CachedModel): nothing cached, the pinned revision named."""

    model_id: str
    revision: str | None
    reused: bool = True
    note: str = "ECS has no shared model cache: each worker downloads the pinned revision when it starts"


def encode_record(data: dict) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    if len(text) <= SSM_STANDARD_LIMIT:
        return text
    return "zlib:" + base64.b64encode(zlib.compress(text.encode(), 9)).decode()


def decode_record(value: str) -> dict:
    if value.startswith("zlib:"):
        value = zlib.decompress(base64.b64decode(value[5:])).decode()
    return json.loads(value)


class EcsBackend:
    kind = "ecs"

    def __init__(self, spec, *, provider: Any = None, credentials: Any = None) -> None:
        if spec.target.kind != "ecs":
            raise PermanentError(f"EcsBackend serves ecs, not {spec.target.kind}")
        self.spec = spec
        self.provider = provider if provider is not None else make_provider(spec, credentials)
        self.serving = self.provider.serving()
        self.aws = self.provider.aws(spec.target.region)
        self.n = ecs_render.names(spec)
        self.dir = home() / "deployments" / spec.name / "ecs"

    # ------------------------------------------------------------------ the platform ref (cached)
    def _saved_ref(self) -> ClusterRef | None:
        try:
            return ClusterRef(**json.loads((self.dir / "cluster.json").read_text())["ref"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save_ref(self, ref: ClusterRef) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "cluster.json.tmp"
        tmp.write_text(json.dumps({"ref": asdict(ref)}, indent=1, sort_keys=True, default=str))
        tmp.replace(self.dir / "cluster.json")

    def cluster_exists(self) -> bool:
        return self.provider._cluster(self.aws, self.n.gpu_cluster) is not None

    def _ref(self) -> ClusterRef:
        ref = self._saved_ref()
        if ref is None:
            if not self.cluster_exists():
                raise PermanentError(
                    f"the ECS cluster {self.n.gpu_cluster} of {self.spec.name} does not exist",
                    hint="run deploy: its provision stage creates it",
                )
            ref = self.provider.ensure_cluster(self.spec)  # a get: it exists
            self._save_ref(ref)
        return ref

    # ------------------------------------------------------------------ 1. provision
    def provision(self) -> Provisioned:
        t0 = time.monotonic()
        ref = self.provider.ensure_cluster(self.spec)
        self._save_ref(ref)
        capacity = self.provider.ensure_gpu_nodes(self.spec, ref)
        storage = self.provider.storage_class(self.spec, ref)
        cluster = (
            f"ecs {self.n.gpu_cluster} (GPU, EC2) + {self.n.fargate_cluster} (Fargate) in {ref.location}; "
            f"Cloud Map {self.n.namespace}"
        )
        return Provisioned(
            where=cluster,
            notes=list(storage.notes),
            details={
                "cluster": cluster,
                "capacity": capacity,
                "namespace": self.n.namespace,
                "vpc_id": ref.details.get("vpc_id"),
                "seconds": round(time.monotonic() - t0, 2),
            },
        )

    # ------------------------------------------------------------------ 2. GPUs (from the spec)
    def detect_gpus(self) -> Accelerators:
        engine = resolve_engine(self.spec)
        gpus = self.spec.total_gpus() if engine == "vllm" else 0
        return Accelerators(
            gpus=gpus,
            engine=engine,
            gpu_operator="not used: the ECS GPU-optimized AMI ships the driver",
            note=f"from the spec (no GPU detection on ECS before a task runs): {gpus} GPU(s) on "
            f"{self.spec.target.instance_type} instances",
        )

    # ------------------------------------------------------------------ 3. etcd + NATS
    def install_platform(self) -> PlatformEndpoint:
        spec, ref = self.spec, self._ref()
        for role in ecs_render.DISCOVERY:  # the same rendering and placement as EcsServing.deploy
            td = ecs_render.task_definition(
                spec, role, execution_role_arn=ref.details["execution_role_arn"], secret_arns={}
            )
            arn = self.serving._ensure_task_definition(self.aws, spec, role, td)
            self.serving._ensure_service(
                self.aws,
                spec,
                self.n.fargate_cluster,
                role,
                arn,
                1,
                {
                    "launchType": "FARGATE",
                    "networkConfiguration": {
                        "awsvpcConfiguration": {
                            "subnets": list(ref.details["subnet_ids"]),
                            "securityGroups": [ref.details["security_group_id"]],
                            "assignPublicIp": "ENABLED",
                        }
                    },
                    "serviceRegistries": [{"registryArn": ref.details["registries"][role]}],
                },
            )
        env = ecs_render.discovery_env(self.n)
        return PlatformEndpoint(
            endpoint=self.endpoint(),
            details={"discovery": env},
            note=f"etcd + NATS on {self.n.fargate_cluster}, found as {env['ETCD_ENDPOINTS']} / "
            f"{env['NATS_SERVER']}",
        )

    # ------------------------------------------------------------------ 4. model (nothing cached)
    def cache_model(self, engine: str, token: str | None = None) -> EcsModel:
        model = self.spec.model
        if model.token is not None:
            if not token:
                raise PermanentError(
                    "model.token is set but no token value was resolved",
                    hint="check the Prefect Secret block or environment variable model.token names",
                )
            self.serving._ensure_secret(self.aws, self.spec, "HF_TOKEN", token)
        return EcsModel(model.id, model.revision)

    # ------------------------------------------------------------------ 5. rollout + ledger
    def _secrets(self) -> dict[str, str]:
        out = {}
        for name in ecs_render.secret_env(self.spec):
            found = self.aws.get(
                "secretsmanager",
                "get_secret_value",
                missing=("ResourceNotFoundException",),
                SecretId=self.n.secret(name),
            )
            if found is not None:
                out[name] = found["SecretString"]
        return out

    def roll_out(
        self, engine: str, model: Any = None, *, reason: str = "deploy", started_by: str = "dynadeploy"
    ) -> Rollout:
        spec, t0 = self.spec, time.monotonic()
        ref = self._ref()
        revisions = self.revisions()
        serving = current(revisions)
        spec_hash = naming.spec_hash(spec)
        recorded = recorded_task_definitions(revisions, spec_hash)
        done = self.serving.converge(spec, ref, secrets=self._secrets(), recorded=recorded)
        arns, note = done.arns, restore_note(recorded, done.arns, done.how)
        if note:
            log.warning("%s: %s", spec.name, note)
        if serving is not None and serving.spec_hash == spec_hash and serving.rendered == [arns]:
            self._wait_steady()
            return Rollout(
                serving.number,
                False,
                endpoint=self._address(),
                note=note,
                seconds=time.monotonic() - t0,
                details={"task_definitions": arns},
            )
        latest = revisions[-1] if revisions else None
        reuse = (
            latest
            if (
                latest is not None
                and latest.status in ("pending", "failed")
                and latest.spec_hash == spec_hash
                and latest.rendered == [arns]
            )
            else None
        )
        revision = reuse or Revision(
            number=next_number(revisions),
            spec_hash=spec_hash,
            spec=spec.canonical_dict(),
            created_at=now_iso(),
            reason=reason,
            started_by=started_by,
            status="pending",
            model={"id": spec.model.id, "revision": spec.model.revision},
            versions={"dynamo": spec.platform.dynamo_version, "image": spec.serving.image, "engine": engine},
            rendered=[arns],
        )
        revision.status = "pending"
        self._put(revision)
        try:
            self._wait_steady()
        except RolloutFailed:
            revision.status = "failed"
            self._put(revision)
            raise
        for rev in revisions:
            if rev.status == "serving" and rev.number != revision.number:
                rev.status = "superseded"
                self._put(rev)
        revision.status = "serving"
        self._put(revision)
        return Rollout(
            revision.number,
            True,
            endpoint=self._address(),
            note=note,
            seconds=time.monotonic() - t0,
            details={"task_definitions": arns},
        )

    def _wait_steady(self) -> None:
        """Every service of the deployment at its desired count with one (completed) deployment."""
        services = self.serving._services(self.aws, self.spec)
        last: list[str] = []

        def steady():
            nonlocal last
            last = []
            for cluster, name in services:
                svc = self.serving._service(self.aws, cluster, name)
                if svc is None:
                    last.append(f"{name}: gone")
                    continue
                deployments = svc.get("deployments") or []
                if any(d.get("rolloutState") == "FAILED" for d in deployments):
                    raise RolloutFailed(
                        f"ECS service {name} failed to roll out: "
                        f"{'; '.join(d.get('rolloutStateReason', '') for d in deployments)}",
                        hint=f"aws ecs describe-services --cluster {cluster} --services {name}",
                    )
                if svc.get("runningCount") != svc.get("desiredCount") or len(deployments) > 1:
                    last.append(
                        f"{name}: {svc.get('runningCount')}/{svc.get('desiredCount')} running, "
                        f"{len(deployments)} deployment(s)"
                    )
            return True if not last else None

        try:
            self.aws.wait(
                steady,
                what="the ECS services to reach their desired counts",
                timeout_s=_timeout("ROLLOUT", 1800),
            )
        except TransientError:
            raise RolloutFailed(
                f"the ECS services of {self.spec.name} are not steady: {'; '.join(last)}",
                hint="check the services' events and stopped tasks in the ECS console",
            ) from None

    def _prefix(self) -> str:
        return f"/dynadeploy/{plan.deployment_id(self.spec)}/revisions"

    def _put(self, revision: Revision) -> None:
        name = f"{self._prefix()}/{revision.number:06d}"
        value = encode_record(revision.as_dict())
        tier = "Standard" if len(value) <= SSM_STANDARD_LIMIT else "Advanced"
        created = self.aws.create(
            "ssm",
            "put_parameter",
            exists=("ParameterAlreadyExists",),
            Name=name,
            Value=value,
            Type="String",
            Tier=tier,
            Tags=tag_list(plan.aws_tags(self.spec)),
        )
        if created is None:  # tags cannot go with Overwrite: they were set when it was created
            self.aws.call(
                "ssm", "put_parameter", Name=name, Value=value, Type="String", Tier=tier, Overwrite=True
            )

    def _parameters(self) -> list[dict]:
        return self.aws.paginate(
            "ssm", "get_parameters_by_path", "Parameters", Path=self._prefix(), Recursive=True
        )

    def revisions(self) -> list[Revision]:
        out = []
        for p in self._parameters():
            with contextlib.suppress(ValueError, TypeError, zlib.error):
                out.append(Revision.from_dict(decode_record(p["Value"])))
        return sorted(out, key=lambda r: r.number)

    def record_smoke(self, number: int, smoke: dict) -> None:
        rev = next((r for r in self.revisions() if r.number == number), None)
        if rev is not None:
            rev.smoke = smoke
            self._put(rev)

    # ------------------------------------------------------------------ 6. reaching the frontend
    def _address(self) -> str | None:
        return self.serving.frontend_address(self.spec)

    def endpoint(self) -> str:
        return self._address() or f"ecs://{self.n.gpu_cluster}/{self.n.service(self.spec, 'frontend')}"

    @contextlib.contextmanager
    def reach(self) -> Iterator[str]:
        """The frontend's address once a RUNNING frontend task has one (bounded wait)."""
        try:
            url = wait_for_value(
                self._address,
                timeout_s=_timeout("ADDRESS", 300),
                interval_s=min(self.aws.waits.poll_s, 5.0),
                what="the frontend's address",
            )
        except WaitTimeout:
            raise PermanentError(
                f"no RUNNING frontend task of {self.n.service(self.spec, 'frontend')} has an address",
                hint=f"check the service's events and stopped tasks in cluster {self.n.gpu_cluster}",
            ) from None
        yield url

    # ------------------------------------------------------------------ status / teardown / inventory
    def status(self) -> Status:
        services = {}
        for cluster, name in self.serving._services(self.aws, self.spec):
            svc = self.serving._service(self.aws, cluster, name) or {}
            services[name] = {
                "cluster": cluster,
                "running": svc.get("runningCount"),
                "desired": svc.get("desiredCount"),
                "task_definition": svc.get("taskDefinition"),
            }
        return Status(
            target="ecs",
            name=self.spec.name,
            endpoint=self.endpoint(),
            ready=bool(services) and all(s["running"] == s["desired"] for s in services.values()),
            revisions=[RevisionRow.of(r) for r in self.revisions()],
            details={"services": services},
        )

    def teardown(self, *, keep_model_cache: bool = True) -> TeardownReport:
        self.provider.delete_cluster(self.spec)  # drains and deletes the services first (EcsServing.undeploy)
        names = [p["Name"] for p in self._parameters()]
        for i in range(0, len(names), 10):
            self.aws.call("ssm", "delete_parameters", Names=names[i : i + 10])
        left = self.inventory()
        if not left:
            shutil.rmtree(self.dir, ignore_errors=True)
        return TeardownReport(
            leftovers=left,
            model_cache_kept=False,
            details={"ledger_deleted": len(names)},
            note=f"ECS clusters {self.n.gpu_cluster} and {self.n.fargate_cluster} and everything "
            f"tagged with {plan.deployment_id(self.spec)} deleted; no model cache on ECS",
        )

    def inventory(self) -> list[str]:
        out = self.provider.inventory(self.spec)
        out += [f"ssm:parameter{p['Name']}" for p in self._parameters()]
        return sorted(set(out))


__all__ = ["EcsBackend", "EcsModel", "decode_record", "encode_record"]
