"""runtime.domain.rollout: the DGD readiness contract (facts/dynamo.md Addendum), stuck-pod diagnosis and
the readiness of plain workloads (the operators' Deployments/DaemonSets, the download Job)."""

from __future__ import annotations

import copy

import pytest

from runtime.domain import naming
from runtime.domain.rollout import (
    COMPONENT_LABEL,
    Readiness,
    assess_deployment,
    assess_dgd,
    assess_job,
    crd_established,
    diagnose,
    is_terminating,
)


def make_dgd(replicas: dict[str, int] | None = None, *, generation: int = 2, observed: int | None = 2,
             ready: str = "True", phase: str | None = "Completed", status: dict | None = None) -> dict:  # fmt: skip
    """A settled graph; ``status`` overrides per-component status entries."""
    replicas = replicas or {"frontend": 1, "decode": 2, "prefill": 1}
    components = {
        name: {"replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n}
        for name, n in replicas.items()
    }
    for name, changes in (status or {}).items():
        components[name] = {**components.get(name, {}), **changes}
        components[name] = {k: v for k, v in components[name].items() if v is not None}
    body: dict = {
        "apiVersion": "nvidia.com/v1beta1",
        "kind": "DynamoGraphDeployment",
        "metadata": {"name": "demo", "namespace": "ns", "generation": generation},
        "spec": {"components": [{"name": n, "type": n, "replicas": k} for n, k in replicas.items()]},
        "status": {
            "state": "successful",
            "conditions": [
                {"type": "Ready", "status": ready, "reason": "AllReady" if ready == "True" else "NotReady"}
            ],
            "components": components,
        },
    }
    if observed is not None:
        body["status"]["observedGeneration"] = observed
    if phase is not None:
        body["status"]["rollingUpdate"] = {"phase": phase}
    return body


def pod(name: str, component: str, *, phase: str = "Running", ready: bool = True, deleting: bool = False,
        containers: list[dict] | None = None, conditions: list[dict] | None = None) -> dict:  # fmt: skip
    meta = {"name": name, "labels": {COMPONENT_LABEL: component}}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    conds = (
        conditions if conditions is not None else [{"type": "Ready", "status": "True" if ready else "False"}]
    )
    return {
        "metadata": meta,
        "status": {
            "phase": phase,
            "conditions": conds,
            "containerStatuses": containers
            if containers is not None
            else [{"name": "main", "restartCount": 0, "state": {"running": {}}}],
        },
    }


# --- the readiness contract ---------------------------------------------------------------------------


def test_settled_graph_is_done():
    verdict = assess_dgd(make_dgd(), [pod("demo-decode-1", "decode"), pod("demo-decode-2", "decode")])
    assert verdict == Readiness(done=True, failed=False, reasons=[])
    assert str(verdict) == "done"


def test_early_success_trap_ready_true_but_not_all_updated():
    dgd = make_dgd(status={"decode": {"updatedReplicas": 1}})
    verdict = assess_dgd(dgd, [])
    assert dgd["status"]["conditions"][0]["status"] == "True"
    assert not verdict.done and not verdict.failed
    assert verdict.reasons == ["decode: 1/2 updated"]


def test_available_replicas_take_precedence_over_ready():
    verdict = assess_dgd(make_dgd(status={"decode": {"readyReplicas": 2, "availableReplicas": 1}}))
    assert verdict.reasons == ["decode: 1/2 available"]


def test_ready_replicas_count_when_available_is_not_reported():
    dgd = make_dgd(status={"prefill": {"availableReplicas": None, "readyReplicas": 0}})
    assert assess_dgd(dgd).reasons == ["prefill: 0/1 ready"]
    ok = make_dgd(status={"prefill": {"availableReplicas": None, "readyReplicas": 1}})
    assert assess_dgd(ok).done


def test_observed_generation_behind_is_not_done():
    verdict = assess_dgd(make_dgd(generation=3, observed=2))
    assert not verdict.done
    assert verdict.reasons == ["the operator has observed generation 2, not 3 yet"]
    missing = assess_dgd(make_dgd(generation=3, observed=None))
    assert missing.reasons == ["the operator has not observed the spec yet (generation 3)"]
    assert assess_dgd(make_dgd(generation=3, observed=4)).done  # ahead is fine
    no_generation = make_dgd()
    del no_generation["metadata"]["generation"]
    assert not assess_dgd(no_generation).done  # as Dynamo's planner: unknown is not observed


def test_failed_rolling_update_is_terminal():
    dgd = make_dgd(phase="Failed")
    dgd["status"]["rollingUpdate"]["message"] = "decode pods never became ready"
    verdict = assess_dgd(dgd)
    assert verdict.failed and not verdict.done
    assert verdict.reasons == ["rolling update failed: decode pods never became ready"]
    assert str(verdict).startswith("failed: ")


@pytest.mark.parametrize("phase", ["Pending", "InProgress"])
def test_rolling_update_in_progress_is_not_done(phase):
    verdict = assess_dgd(make_dgd(phase=phase))
    assert not verdict.done and not verdict.failed
    assert verdict.reasons == [f"rolling update {phase}"]


@pytest.mark.parametrize("phase", [None, "", "Completed"])
def test_rolling_update_empty_or_completed_is_fine(phase):
    assert assess_dgd(make_dgd(phase=phase)).done


def test_terminating_pods_hold_the_rollout():
    pods = [pod("demo-decode-old", "decode", deleting=True), pod("demo-decode-1", "decode")]
    verdict = assess_dgd(make_dgd(), pods)
    assert not verdict.done
    assert verdict.reasons == ["decode: 1 pod(s) terminating (demo-decode-old)"]
    finished = [pod("demo-decode-old", "decode", deleting=True, phase="Succeeded")]
    assert assess_dgd(make_dgd(), finished).done
    assert is_terminating(pods[0]) and not is_terminating(finished[0])


def test_terminating_pod_found_by_dynadeploy_role_label_too():
    p = pod("x", "decode", deleting=True)
    p["metadata"]["labels"] = {naming.ROLE_KEY: "prefill"}
    assert assess_dgd(make_dgd(), [p]).reasons == ["prefill: 1 pod(s) terminating (x)"]


def test_ready_condition_false_or_missing():
    not_ready = make_dgd(ready="False")
    not_ready["status"]["conditions"][0]["message"] = "waiting for decode"
    assert assess_dgd(not_ready).reasons == ["Ready is False (NotReady: waiting for decode)"]
    none = make_dgd()
    none["status"]["conditions"] = []
    assert assess_dgd(none).reasons == ["no Ready condition yet"]


def test_component_without_status_and_missing_graph():
    dgd = make_dgd()
    del dgd["status"]["components"]["prefill"]
    assert assess_dgd(dgd).reasons == ["prefill: no status reported yet (0/1 ready)"]
    assert assess_dgd(None).reasons == ["the graph does not exist (yet)"]
    assert assess_dgd({}).done is False


def test_everything_off_is_reported_at_once():
    dgd = make_dgd(generation=5, observed=4, ready="False", phase="InProgress",
                   status={"decode": {"updatedReplicas": 0, "availableReplicas": 1}})  # fmt: skip
    verdict = assess_dgd(dgd, [pod("old", "frontend", deleting=True)])
    assert len(verdict.reasons) == 6
    assert "decode: 0/2 updated" in verdict.reasons and "decode: 1/2 available" in verdict.reasons


def test_v1alpha1_services_status_is_understood():
    dgd = make_dgd()
    dgd["status"]["services"] = dgd["status"].pop("components")
    assert assess_dgd(dgd).done
    dgd["status"]["services"]["decode"]["updatedReplicas"] = 0
    assert assess_dgd(dgd).reasons == ["decode: 0/2 updated"]


def test_scaled_to_zero_component_needs_no_status():
    dgd = make_dgd({"frontend": 1, "worker": 0})
    del dgd["status"]["components"]["worker"]
    assert assess_dgd(dgd).done


def test_assess_dgd_does_not_change_its_input():
    dgd = make_dgd(status={"decode": {"updatedReplicas": 1}})
    before = copy.deepcopy(dgd)
    assess_dgd(dgd, [pod("a", "decode", deleting=True)])
    assert dgd == before


# --- diagnosis ----------------------------------------------------------------------------------------


def waiting(reason: str, message: str = "", restarts: int = 0, last: dict | None = None) -> list[dict]:
    status = {
        "name": "main",
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason, "message": message}},
    }
    if last:
        status["lastState"] = {"terminated": last}
    return [status]


def test_crash_loop_with_oom_names_the_component_and_the_fix():
    pods = [
        pod("demo-decode-a", "decode", ready=False,
            containers=waiting("CrashLoopBackOff", "back-off 5m0s", 7, {"reason": "OOMKilled", "exitCode": 137})),
        pod("demo-decode-b", "decode", ready=False),
        pod("demo-frontend-a", "frontend"),
    ]  # fmt: skip
    (line,) = diagnose(pods, [])
    assert line.startswith("decode: pod demo-decode-a: container main CrashLoopBackOff, 7 restart(s)")
    assert "OOMKilled" in line and "code 137" in line and "memory" in line
    assert line.endswith("(+1 more pod(s) not ready)")


def test_image_pull_backoff():
    pods = [pod("demo-worker-a", "worker", phase="Pending", ready=False,
                containers=waiting("ImagePullBackOff", 'Back-off pulling image "nvcr.io/x:9"'))]  # fmt: skip
    (line,) = diagnose(pods)
    assert "worker: pod demo-worker-a: container main ImagePullBackOff" in line
    assert "serving.image" in line and "nvcr.io/x:9" in line


def test_unschedulable_uses_the_schedulers_event():
    p = pod("demo-decode-a", "decode", phase="Pending", ready=False, containers=[],
            conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}])  # fmt: skip
    events = [
        {"involvedObject": {"kind": "Pod", "name": "demo-decode-a"}, "reason": "FailedScheduling",
         "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.", "lastTimestamp": "2025-01-01T00:00:02Z"},
        {"involvedObject": {"kind": "Pod", "name": "other"}, "reason": "FailedScheduling", "message": "nope"},
    ]  # fmt: skip
    assert diagnose([p], events) == [
        "decode: pod demo-decode-a is unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    ]


def test_events_k8s_io_format_and_multi_attach_hint():
    p = pod("demo-frontend-a", "frontend", phase="Pending", ready=False, containers=[],
            conditions=[{"type": "PodScheduled", "status": "True"}])  # fmt: skip
    events = [{"regarding": {"kind": "Pod", "name": "demo-frontend-a"}, "reason": "FailedAttachVolume",
               "note": "Multi-Attach error for volume pvc-1 Volume is already used by pod(s) demo-worker-a"}]  # fmt: skip
    (line,) = diagnose([p], events)
    assert "cannot mount a volume: Multi-Attach error" in line and "ReadWriteMany" in line


def test_running_but_not_ready_shows_the_probe():
    p = pod("demo-worker-a", "worker", ready=False)
    events = [{"involvedObject": {"kind": "Pod", "name": "demo-worker-a"}, "reason": "Unhealthy",
               "message": "Readiness probe failed: HTTP probe failed with statuscode: 503"}]  # fmt: skip
    assert diagnose([p], events) == [
        (
            "worker: pod demo-worker-a is running but not ready: Readiness probe failed: HTTP probe failed "
            "with statuscode: 503"
        )
    ]
    assert diagnose([p]) == ["worker: pod demo-worker-a is running but not ready (still loading the model?)"]


def test_missing_secret_and_healthy_pods():
    p = pod("demo-worker-a", "worker", phase="Pending", ready=False,
            containers=waiting("CreateContainerConfigError", 'secret "demo-hf-token" not found'))  # fmt: skip
    (line,) = diagnose([p, pod("demo-frontend-a", "frontend")])
    assert 'secret "demo-hf-token" not found' in line and "HF token Secret" in line
    assert diagnose([pod("a", "worker"), pod("b", "frontend")]) == []


def test_one_line_per_component_worst_problem_first():
    pods = [
        pod("w1", "worker", ready=False),
        pod("w2", "worker", phase="Pending", ready=False, containers=waiting("ErrImagePull")),
        pod("f1", "frontend", ready=False),
    ]
    lines = diagnose(pods)
    assert [line.split(":")[0] for line in lines] == ["frontend", "worker"]
    assert "ErrImagePull" in lines[1] and "+1 more" in lines[1]


def test_failed_and_terminating_pods():
    failed = pod("j", "worker", phase="Failed", ready=False)
    failed["status"]["reason"] = "Evicted"
    assert diagnose([failed]) == ["worker: pod j failed: Evicted"]
    assert diagnose([pod("t", "worker", deleting=True)]) == ["worker: pod t is terminating"]


# --- workloads -------------------------------------------------------------------------------------------


def deployment(replicas=1, updated=1, available=1, generation=1, observed=1, kind="Deployment", **status):
    return {
        "kind": kind,
        "metadata": {"name": "op", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": updated,
                   "availableReplicas": available, "readyReplicas": available, **status},
    }  # fmt: skip


def test_deployment_readiness():
    assert assess_deployment(deployment()).done
    assert assess_deployment(deployment(updated=0)).reasons == ["Deployment op: 0/1 updated"]
    assert assess_deployment(deployment(available=0)).reasons == ["Deployment op: 0/1 available"]
    assert not assess_deployment(deployment(generation=2)).done
    surge = deployment()
    surge["status"]["replicas"] = 2
    assert assess_deployment(surge).reasons == ["Deployment op: 2 replicas, 1 desired (old ones going)"]
    stuck = deployment(available=0)
    stuck["status"]["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                      "message": "ReplicaSet op-1 has timed out progressing."}]  # fmt: skip
    verdict = assess_deployment(stuck)
    assert verdict.failed and not verdict.done
    assert assess_deployment(None).reasons == ["it does not exist (yet)"]


def test_daemonset_readiness():
    ds = {"kind": "DaemonSet", "metadata": {"name": "nvidia-device-plugin", "generation": 1},
          "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2,
                     "numberAvailable": 1}}  # fmt: skip
    assert assess_deployment(ds).reasons == ["DaemonSet nvidia-device-plugin: 1/2 nodes available"]
    ds["status"]["numberAvailable"] = 2
    assert assess_deployment(ds).done
    empty = {
        "kind": "DaemonSet",
        "metadata": {"name": "x", "generation": 1},
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 0},
    }
    assert assess_deployment(empty).done  # no GPU node yet: nothing to wait for


def test_statefulset_readiness():
    sts = deployment(kind="StatefulSet", currentRevision="a", updateRevision="b")
    assert assess_deployment(sts).reasons == ["StatefulSet op: rolling to b"]
    sts["status"]["currentRevision"] = "b"
    assert assess_deployment(sts).done


def test_job_and_crd():
    job = {"metadata": {"name": "demo-model-download"}, "status": {"active": 1}}
    assert assess_job(job).reasons == ["Job demo-model-download running (1 active, 0 failed)"]
    job["status"]["conditions"] = [{"type": "Complete", "status": "True"}]
    assert assess_job(job).done
    job["status"]["conditions"] = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
    verdict = assess_job(job)
    assert verdict.failed and verdict.reasons == ["Job demo-model-download failed (BackoffLimitExceeded)"]
    assert crd_established({"status": {"conditions": [{"type": "Established", "status": "True"}]}})
    assert not crd_established({"status": {"conditions": [{"type": "NamesAccepted", "status": "True"}]}})
    assert not crd_established(None)


def test_early_success_window_with_surplus_old_replicas_is_not_done():
    """Dynamo #3567 as the simulator reproduces it: Ready, generation observed, desired == updated ==
    available, but a surplus old pod still serves (replicas 2 of 1 wanted)."""
    from runtime.domain.rollout import assess_dgd

    dgd = {
        "metadata": {"generation": 2},
        "spec": {"components": [{"name": "worker", "replicas": 1}]},
        "status": {
            "observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "True"}],
            "components": {
                "worker": {"replicas": 2, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1}
            },
        },
    }
    verdict = assess_dgd(dgd)
    assert not verdict.done and any("2 replicas running, 1 wanted" in r for r in verdict.reasons)


def test_graph_deployments_that_lag_their_spec_keep_the_rollout_open():
    from runtime.domain.rollout import assess_dgd

    dgd = {
        "metadata": {"generation": 3},
        "spec": {"components": [{"name": "worker", "replicas": 1}]},
        "status": {
            "observedGeneration": 3,
            "conditions": [{"type": "Ready", "status": "True"}],
            "components": {"worker": {"replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}},
        },
    }
    lagging = {"metadata": {"name": "g-worker", "generation": 5}, "status": {"observedGeneration": 4}}
    rolling = {
        "metadata": {"name": "g-worker", "generation": 5},
        "status": {"observedGeneration": 5, "replicas": 2, "updatedReplicas": 1},
    }
    done = {
        "metadata": {"name": "g-worker", "generation": 5},
        "status": {"observedGeneration": 5, "replicas": 1, "updatedReplicas": 1},
    }
    assert not assess_dgd(dgd, workloads=[lagging]).done
    assert not assess_dgd(dgd, workloads=[rolling]).done
    assert assess_dgd(dgd, workloads=[done]).done
