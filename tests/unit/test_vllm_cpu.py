"""engine: vllm on a host without a GPU (serving.vllm.device: cpu): spec rules, the rendered worker, the
built-in tiny Llama, and the runtime lookup. Pure: no vLLM is started here (tests/integration/local/
test_vllm_cpu.py does that)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from runtime.errors import PreflightError, SpecError
from runtime.render.local_plan import LocalContext, kv_events_endpoint, worker_port_names, worker_programs
from runtime.spec import load_spec, parse_spec
from runtime.targets.local import tiny_llama, vllm_cpu
from runtime.targets.local.paths import DeploymentPaths

ROOT = Path(__file__).resolve().parents[2]
CPU = {"engine": "vllm", "workers": {"gpus": 0}, "vllm": {"device": "cpu"}}


def doc(serving: dict, **sections) -> dict:
    return {
        "apiVersion": "dynadeploy.io/v1",
        "name": "cpu-vllm",
        "model": {"id": tiny_llama.MODEL_ID},
        "target": {"kind": "local", "gpus": "none"},
        "serving": serving,
        **sections,
    }


def issues(data: dict) -> list:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, source="t.yaml")
    return caught.value.issues


def ctx(tmp_path, engine="vllm") -> LocalContext:
    return LocalContext(
        paths=DeploymentPaths.for_deployment("cpu-vllm", str(tmp_path)),
        python="/venv/python",
        host="127.0.0.1",
        frontend_port=8000,
        model_path="/cache/tiny-llama",
        engine=engine,
        discovery="file",
        vllm_python="/repo/.vllm-cpu/bin/python",
    )


# --- spec -------------------------------------------------------------------------------------------


def test_example_spec_loads_and_asks_for_a_cpu_vllm():
    spec = load_spec(ROOT / "infra" / "targets" / "local-vllm.yaml")
    assert spec.serving.engine == "vllm" and spec.serving.vllm.device == "cpu"
    assert spec.model.id == tiny_llama.MODEL_ID and spec.model.revision is None


def test_cpu_vllm_is_allowed_only_when_asked_for():
    parse_spec(doc(CPU))  # explicit: fine with no GPU and gpus: none
    found = issues(doc({"engine": "vllm", "workers": {"gpus": 0}}))  # without device: cpu, still refused
    assert any("at least 1 GPU" in i.problem and "serving.vllm.device: cpu" in i.fix for i in found)
    # auto keeps the mocker on a host without GPUs
    assert (
        parse_spec(doc({"engine": "auto", "workers": {"gpus": 0}})).engine(gpus_available=False) == "mocker"
    )


@pytest.mark.parametrize(
    ("serving", "target", "path", "words"),
    [
        (
            {**CPU, "topology": "disagg", "workers": None, "prefill": {"gpus": 0}, "decode": {"gpus": 0}},
            None,
            "serving.topology",
            ["NIXL", "CPU"],
        ),
        ({**CPU, "workers": {"gpus": 1}}, None, "serving.workers.gpus", ["device is cpu"]),
        ({**CPU, "engine": "mocker"}, None, "serving.vllm.device", ["engine is mocker"]),
        (CPU, {"kind": "kube"}, "serving.vllm.device", ["local target only"]),
    ],
    ids=["disagg-needs-nixl", "cpu-with-gpus", "cpu-with-mocker", "cpu-on-kube"],
)
def test_cpu_vllm_refusals(serving, target, path, words):
    data = doc({k: v for k, v in serving.items() if v is not None})
    if target:
        data["target"] = target
    found = [i for i in issues(data) if i.path == path]
    assert found, [str(i) for i in issues(data)]
    assert all(w in found[0].problem for w in words) and found[0].fix


def test_builtin_llm_takes_no_revision():
    data = doc(CPU)
    data["model"]["revision"] = "main"
    assert any(i.path == "model.revision" for i in issues(data))


def test_spec_hash_of_specs_without_vllm_is_unchanged():
    spec = parse_spec({"apiVersion": "dynadeploy.io/v1", "name": "x"})
    assert "vllm" not in spec.canonical_dict()["serving"]


# --- the rendered worker ----------------------------------------------------------------------------


def test_cpu_worker_runs_in_the_cpu_runtime_with_cpu_defaults(tmp_path):
    spec = parse_spec(
        doc(
            {
                **CPU,
                "workers": {"gpus": 0, "engine_args": ["--max-num-seqs", "4"]},
                "vllm": {"device": "cpu", "kv_cache_gib": 2},
            }
        )
    )
    (p,) = worker_programs(spec, ctx(tmp_path), 3, {"worker-r3-0": 9100})
    cmd = list(p.command)
    assert cmd[:3] == ["/repo/.vllm-cpu/bin/python", "-m", "dynamo.vllm"]
    assert cmd[cmd.index("--dtype") + 1] == "float32" and "--enforce-eager" in cmd
    assert cmd[cmd.index("--max-model-len") + 1] == "512" and cmd[cmd.index("--max-num-seqs") + 1] == "4"
    assert p.env["VLLM_CPU_KVCACHE_SPACE"] == "2" and p.env["VLLM_NO_USAGE_STATS"] == "1"
    assert p.env["VLLM_HOST_IP"] == "127.0.0.1" and p.env["HF_HUB_OFFLINE"] == "1"
    assert p.stop_wait_s >= 15  # vLLM drains ~9 s after SIGTERM


def test_engine_args_override_the_cpu_defaults(tmp_path):
    spec = parse_spec(
        doc(
            {
                **CPU,
                "workers": {"gpus": 0, "engine_args": ["--dtype=bfloat16", "--max-model-len", "256"]},
                "vllm": {"device": "cpu", "enforce_eager": False},
            }
        )
    )
    (p,) = worker_programs(spec, ctx(tmp_path), 1, {"worker-r1-0": 9100})
    cmd = list(p.command)
    assert cmd.count("--max-model-len") == 1 and "--dtype" not in cmd and "--dtype=bfloat16" in cmd
    assert "--enforce-eager" not in cmd


def test_kv_router_workers_publish_kv_events_on_their_own_ipc_socket(tmp_path):
    spec = parse_spec(doc({**CPU, "topology": "agg_router", "workers": {"gpus": 0, "replicas": 2}}))
    names = worker_port_names(spec, 1, "vllm")
    assert names == ["worker-r1-0", "worker-r1-1"]
    programs = worker_programs(spec, ctx(tmp_path), 1, dict(zip(names, (9100, 9101), strict=True)))
    endpoints = []
    for p in programs:
        cmd = list(p.command)
        config = json.loads(cmd[cmd.index("--kv-events-config") + 1])
        assert config["enable_kv_cache_events"] and config["publisher"] == "zmq"
        endpoints.append(config["endpoint"])
    # vLLM binds only wildcard or ipc endpoints: an ipc socket keeps the events off every interface
    assert all(e.startswith("ipc:///") and len(e) < 107 for e in endpoints) and len(set(endpoints)) == 2
    assert kv_events_endpoint("/s/run", "worker-r1-0") == "ipc:///s/run/worker-r1-0.kv-events"
    assert kv_events_endpoint("/" + "d" * 120, "w") == kv_events_endpoint("/" + "d" * 120, "w")  # stable
    plain = parse_spec(doc({**CPU, "workers": {"gpus": 0}}))
    assert (
        "--kv-events-config" not in worker_programs(plain, ctx(tmp_path), 1, {"worker-r1-0": 9100})[0].command
    )


def test_mocker_and_gpu_workers_are_unchanged(tmp_path):
    spec = parse_spec({"apiVersion": "dynadeploy.io/v1", "name": "x"})
    (p,) = worker_programs(spec, ctx(tmp_path, engine="mocker"), 1, {"worker-r1-0": 9100})
    assert p.command[:3] == ("/venv/python", "-m", "dynamo.mocker") and "VLLM_CPU_KVCACHE_SPACE" not in p.env


# --- the built-in tiny Llama ------------------------------------------------------------------------


def test_tiny_llama_is_deterministic_and_matches_its_pinned_revision():
    files = tiny_llama.build_files()
    assert tiny_llama.revision(files) == tiny_llama.PINNED_REVISION
    assert tiny_llama.revision(tiny_llama.build_files()) == tiny_llama.PINNED_REVISION
    config = json.loads(files["config.json"])
    assert config["architectures"] == ["LlamaForCausalLM"] and config["head_dim"] == 32
    blob = files["model.safetensors"]
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    assert (8 + n) % 8 == 0
    count = sum(
        len(v["shape"]) and __import__("math").prod(v["shape"])
        for k, v in header.items()
        if k != "__metadata__"
    )
    assert count == tiny_llama.parameter_count() == 4_235_136
    assert len(blob) == 8 + n + 4 * count


def test_tiny_llama_is_cached_with_weights(tmp_path):
    from runtime.targets.local import model_cache

    first = model_cache.ensure_model(tmp_path, tiny_llama.MODEL_ID, None, weights=True)
    assert first.revision == tiny_llama.PINNED_REVISION and (first.path / "model.safetensors").exists()
    again = model_cache.ensure_model(tmp_path, tiny_llama.MODEL_ID, None, weights=True)
    assert again.path == first.path and again.reused


# --- the runtime lookup -----------------------------------------------------------------------------


def test_missing_runtime_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(vllm_cpu.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(PreflightError) as err:
        vllm_cpu.find()
    assert "not installed" in str(err.value) and "make vllm-cpu" in err.value.hint


def test_runtime_built_from_another_lock_is_refused(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text("")
    (tmp_path / vllm_cpu.STAMP).write_text("0" * 64)
    monkeypatch.setenv(vllm_cpu.ENV_VAR, str(tmp_path))
    with pytest.raises(PreflightError, match="another lock"):
        vllm_cpu.find()


def test_a_crashed_engine_is_reported_by_its_own_message():
    from runtime.targets.local.workers import engine_error

    log = (
        '\x1b[2m2026\x1b[0m ERROR tower_http 503\nTraceback (most recent call last):\n  File "x.py", line 1\n'
        "    main()\npydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig\n"
        "  Value error, User-specified max_model_len (4096) is greater than the derived max_model_len\n"
        "2026 INFO _core: exit\n2026 ERROR tower_http 503 Service Unavailable\n"
    )
    assert engine_error(log) == (
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig\n"
        "  Value error, User-specified max_model_len (4096) is greater than the derived "
        "max_model_len"
    )
    assert engine_error("no traceback here") == "no traceback here"


def test_simulator_runs_the_rendered_vllm_command_on_the_cpu_runtime(tmp_path):
    from tests.harness.dynadeploy_host import ProcessRuntime

    rt = ProcessRuntime(vllm_python="/repo/.vllm-cpu/bin/python", workdir=tmp_path, enabled=True)
    try:
        events = '{"publisher":"zmq","endpoint":"tcp://*:20080","enable_kv_cache_events":true}'
        argv = [
            "python3",
            "-m",
            "dynamo.vllm",
            "--model",
            "/models/Qwen/Qwen3-0.6B",
            "--served-model-name",
            "qwen",
            "--discovery-backend",
            "kubernetes",
            "--kv-events-config",
            events,
            "--max-num-seqs",
            "4",
            "--dtype=bfloat16",
        ]
        cmd, env = rt._vllm_command(argv, "127.0.3.4", "/sim/ns-g", "g-worker-0")
        assert cmd[:3] == ["/repo/.vllm-cpu/bin/python", "-m", "dynamo.vllm"]
        assert cmd[cmd.index("--model") + 1].endswith(
            tiny_llama.PINNED_REVISION
        )  # not a local dir: the tiny Llama
        assert (
            cmd[cmd.index("--served-model-name") + 1] == "qwen"
            and cmd[cmd.index("--max-num-seqs") + 1] == "4"
        )
        assert cmd[-2:] == ["--discovery-backend", "file"] and "kubernetes" not in cmd
        config = json.loads(cmd[cmd.index("--kv-events-config") + 1])
        assert (
            config["enable_kv_cache_events"] and config["endpoint"] == "ipc:///sim/ns-g/g-worker-0.kv-events"
        )
        assert (
            "--dtype=bfloat16" in cmd and "--dtype" not in cmd and "--enforce-eager" in cmd
        )  # rendered flag wins
        assert env["VLLM_HOST_IP"] == "127.0.3.4" and env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    finally:
        rt.stop()
