"""A content-addressed model cache on local disk.

    models/
    ├── blobs/sha256/<hex>                    every file once, named by its checksum
    ├── hf/                                   huggingface_hub's own cache (resumable downloads)
    └── snapshots/<model-key>/<revision>/     hard links to the blobs + MANIFEST (name -> sha256, size)

A snapshot is assembled in a temporary sibling directory and renamed into place, so a snapshot that
exists is complete: a crash mid-download leaves only blobs (reused next time) and huggingface_hub's
partial files (resumed next time). A present snapshot at the requested revision is reused without
touching the network; ``verify=True`` re-hashes its files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import PermanentError, TransientError
from runtime.local import tiny_model

MANIFEST = "MANIFEST.dynadeploy.json"
# What the mocker reads from a Hugging Face repo; vLLM needs the weights as well.
TOKENIZER_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", "tokenizer*"]
WEIGHT_PATTERNS = TOKENIZER_PATTERNS + ["*.safetensors", "*.py"]


@dataclass(frozen=True)
class CachedModel:
    model_id: str
    revision: str
    path: Path
    files: int
    bytes: int
    reused: bool

    def as_dict(self) -> dict:
        return {"model": self.model_id, "revision": self.revision, "path": str(self.path),
                "files": self.files, "bytes": self.bytes, "reused": self.reused}


def model_key(model_id: str) -> str:
    return model_id.replace("/", "--")


def snapshot_dir(cache: Path, model_id: str, revision: str) -> Path:
    return cache / "snapshots" / model_key(model_id) / revision


def ensure_model(cache: Path, model_id: str, revision: str | None, *, weights: bool = False,
                 token: str | None = None, verify: bool = False) -> CachedModel:
    """Materialise ``model_id`` at ``revision`` into the cache; a no-op when already there."""
    if model_id == tiny_model.MODEL_ID:
        files = tiny_model.build_files()
        rev = tiny_model.revision(files)
        found = _existing(cache, model_id, rev, verify)
        if found:
            return found
        return _assemble(cache, model_id, rev, {name: _store_bytes(cache, data) for name, data in files.items()})
    if not revision:
        raise PermanentError(f"model {model_id!r} has no pinned revision", hint="set model.revision to a commit sha")
    found = _existing(cache, model_id, revision, verify)
    if found:
        return found
    source = _hf_download(cache, model_id, revision, weights=weights, token=token)
    blobs = {}
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        blobs[str(path.relative_to(source))] = _store_file(cache, path)
    return _assemble(cache, model_id, revision, blobs)


def read_manifest(snapshot: Path) -> dict:
    return json.loads((snapshot / MANIFEST).read_text())


def _existing(cache: Path, model_id: str, revision: str, verify: bool) -> CachedModel | None:
    snap = snapshot_dir(cache, model_id, revision)
    try:
        manifest = read_manifest(snap)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    total = 0
    for name, meta in manifest["files"].items():
        f = snap / name
        if not f.is_file() or f.stat().st_size != meta["size"] or (verify and _sha256(f) != meta["sha256"]):
            # A damaged snapshot is rebuilt from scratch rather than patched in place.
            shutil.rmtree(snap, ignore_errors=True)
            return None
        total += meta["size"]
    return CachedModel(model_id, revision, snap, len(manifest["files"]), total, reused=True)


def _assemble(cache: Path, model_id: str, revision: str, blobs: dict[str, tuple[str, int]]) -> CachedModel:
    final = snapshot_dir(cache, model_id, revision)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{revision[:12]}-", dir=final.parent))
    try:
        for name, (digest, _size) in blobs.items():
            dest = tmp / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(_blob_path(cache, digest), dest)
        manifest = {"model": model_id, "revision": revision,
                    "files": {n: {"sha256": d, "size": s} for n, (d, s) in sorted(blobs.items())}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _fsync_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another run finished the same snapshot first; theirs is as good as ours.
            if not (final / MANIFEST).exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return CachedModel(model_id, revision, final, len(blobs), sum(s for _, s in blobs.values()), reused=False)


def _blob_path(cache: Path, digest: str) -> Path:
    return cache / "blobs" / "sha256" / digest


def _store_bytes(cache: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    blob = _blob_path(cache, digest)
    if not blob.exists():
        _atomic_write(blob, data)
    return digest, len(data)


def _store_file(cache: Path, path: Path) -> tuple[str, int]:
    digest = _sha256(path)
    blob = _blob_path(cache, digest)
    if not blob.exists():
        blob.parent.mkdir(parents=True, exist_ok=True)
        tmp = blob.with_name(blob.name + f".tmp{os.getpid()}")
        _link_or_copy(path.resolve(), tmp)
        os.replace(tmp, blob)
    return digest, blob.stat().st_size


def _atomic_write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, dest)


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hf_download(cache: Path, model_id: str, revision: str, *, weights: bool, token: str | None) -> Path:
    """Fetch the repo snapshot through huggingface_hub (honours HF_ENDPOINT; resumes partial files)."""
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    try:
        path = huggingface_hub.snapshot_download(
            repo_id=model_id, revision=revision, cache_dir=str(cache / "hf"), token=token or False,
            allow_patterns=WEIGHT_PATTERNS if weights else TOKENIZER_PATTERNS,
        )
    except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError, hf_errors.GatedRepoError) as exc:
        raise PermanentError(
            f"cannot fetch {model_id}@{revision}: {type(exc).__name__}",
            hint="check model.id and model.revision, and model.token for gated or private repos",
        ) from exc
    except (hf_errors.HfHubHTTPError, OSError) as exc:
        raise TransientError(f"download of {model_id}@{revision} failed: {type(exc).__name__}") from exc
    return Path(path)
