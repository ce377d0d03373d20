"""A content-addressed model cache on local disk.

    models/
    ├── blobs/sha256/<hex>                    every file once, named by its checksum
    ├── hf/                                   huggingface_hub's own cache (resumable downloads)
    └── snapshots/<model-key>/<revision>/     hard links to the blobs + MANIFEST (name -> sha256, size)

A snapshot is assembled in a temporary sibling directory and renamed into place, so a snapshot that
exists is complete. A download interrupted by a dropped connection is resumed within the call (Range
requests, by huggingface_hub); a failed download leaves the files that did complete in hf/, reused
next time (huggingface_hub 1.x discards a file's partial bytes when its download fails). A present
snapshot at the requested commit is reused without touching the network; ``verify=True`` re-hashes
its files, and a file found corrupted is fetched again (its blob, shared by hard link with hf/, is
dropped and the HF files are re-downloaded).

Snapshots are keyed by commit sha only. A branch or tag (``main``, allowed on the local target) is
first resolved to the commit it points at now, with one model-info call to the hub, so a branch that
moved gets a new snapshot instead of the old one forever; a 40-hex sha needs no call at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from runtime.errors import PermanentError
from runtime.gateways import huggingface
from runtime.targets.local import tiny_llama, tiny_model

MANIFEST = "MANIFEST.dynadeploy.json"
# What the mocker reads from a Hugging Face repo; vLLM needs the weights as well.
TOKENIZER_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", "tokenizer*"]
WEIGHT_PATTERNS = TOKENIZER_PATTERNS + ["*.safetensors", "*.py"]
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")  # what huggingface_hub takes as a commit (REGEX_COMMIT_HASH)


@dataclass(frozen=True)
class CachedModel:
    model_id: str
    revision: str  # the commit sha of a Hugging Face model (a branch or tag is resolved to it)
    path: Path
    files: int
    bytes: int
    reused: bool
    requested_revision: str | None = None  # as the spec gave it ("main", a sha); None for the built-in model

    def as_dict(self) -> dict:
        return {
            "model": self.model_id,
            "revision": self.revision,
            "path": str(self.path),
            "files": self.files,
            "bytes": self.bytes,
            "reused": self.reused,
            "requested_revision": self.requested_revision,
        }


def model_key(model_id: str) -> str:
    return model_id.replace("/", "--")


def snapshot_dir(cache: Path, model_id: str, revision: str) -> Path:
    return cache / "snapshots" / model_key(model_id) / revision


def ensure_model(
    cache: Path,
    model_id: str,
    revision: str | None,
    *,
    weights: bool = False,
    token: str | None = None,
    verify: bool = False,
) -> CachedModel:
    """Materialise ``model_id`` at ``revision`` into the cache; a no-op when already there.

    A Hugging Face ``revision`` that is not a commit sha is resolved to one through the hub first (so
    this always talks to the hub for a branch or tag); the result's ``revision`` is that sha.
    """
    if model_id == tiny_model.MODEL_ID:
        files = tiny_model.build_files()
        rev = tiny_model.revision(files)
        found, _corrupt = _existing(cache, model_id, rev, verify)
        if found:
            return found
        return _assemble(
            cache, model_id, rev, {name: _store_bytes(cache, data) for name, data in files.items()}
        )
    if model_id == tiny_llama.MODEL_ID:
        # Known by its pinned revision: a present snapshot is reused without rebuilding (17 MB of weights).
        rev = tiny_llama.PINNED_REVISION
        found, _corrupt = _existing(cache, model_id, rev, verify, need_weights=True)
        if found:
            return found
        files = tiny_llama.build_files()
        built = tiny_llama.revision(files)
        if built != rev:
            raise PermanentError(
                f"the built-in model {model_id} built as revision {built}, not the pinned {rev}",
                hint="the recipe or the tokenizer package changed: update tiny_llama.PINNED_REVISION",
            )
        blobs = {name: _store_bytes(cache, data) for name, data in files.items()}
        return _assemble(cache, model_id, rev, blobs, weights=True)
    if not revision:
        raise PermanentError(
            f"model {model_id!r} has no pinned revision", hint="set model.revision to a commit sha"
        )
    requested = revision
    if not COMMIT_SHA.fullmatch(revision):
        revision = _hf_resolve(model_id, revision, token=token)
    found, corrupt = _existing(cache, model_id, revision, verify, need_weights=weights)
    if found:
        return replace(found, requested_revision=requested)
    # A corrupted file means the bytes in hf/ (the same inode) are corrupted too: download them again.
    source = _hf_download(cache, model_id, revision, weights=weights, token=token, force=corrupt)
    blobs = {}
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        blobs[str(path.relative_to(source))] = _store_file(cache, path)
    return replace(_assemble(cache, model_id, revision, blobs, weights=weights), requested_revision=requested)


def read_manifest(snapshot: Path) -> dict:
    return json.loads((snapshot / MANIFEST).read_text())


def _existing(
    cache: Path, model_id: str, revision: str, verify: bool, *, need_weights: bool = False
) -> tuple[CachedModel | None, bool]:
    """The snapshot if present and intact, else (None, whether a file's content was found corrupted).

    A snapshot fetched without weights does not satisfy ``need_weights`` (it is kept until the one
    with weights replaces it). A damaged snapshot (no or unreadable manifest, a file missing or of the
    wrong size, or with ``verify`` a wrong checksum) is discarded, to be rebuilt from scratch rather
    than patched in place.
    """
    snap = snapshot_dir(cache, model_id, revision)
    if not snap.exists():
        return None, False
    try:
        manifest = read_manifest(snap)
        entries = [(name, meta["sha256"], int(meta["size"])) for name, meta in manifest["files"].items()]
        has_weights = bool(manifest.get("weights", False))
    except FileNotFoundError:
        if not snap.exists():  # discarded meanwhile by a concurrent caller
            return None, False
        _discard(snap)
        return None, False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        _discard(snap)
        return None, False
    total = 0
    for name, digest, size in entries:
        f = snap / name
        try:
            damaged = not f.is_file() or f.stat().st_size != size
        except OSError:
            damaged = True
        if not damaged and verify and _sha256(f) != digest:
            # Snapshot files are hard links to their blob: drop the blob too unless it is intact (a copy).
            blob = _blob_path(cache, digest)
            if blob.is_file() and _sha256(blob) != digest:
                blob.unlink(missing_ok=True)
            _discard(snap)
            return None, True
        if damaged:
            _discard(snap)
            return None, False
        total += size
    if need_weights and not has_weights:
        return None, False
    return CachedModel(model_id, revision, snap, len(entries), total, reused=True), False


def _discard(snap: Path) -> None:
    """Remove a snapshot directory: renamed aside first, so it disappears at once for other readers."""
    aside = snap.with_name(f".tmp-discard-{snap.name[:12]}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(snap, aside)
    except FileNotFoundError:
        return  # already gone (a concurrent caller discarded it)
    except OSError:
        aside = snap
    shutil.rmtree(aside, ignore_errors=True)


def _assemble(
    cache: Path, model_id: str, revision: str, blobs: dict[str, tuple[str, int]], *, weights: bool = False
) -> CachedModel:
    final = snapshot_dir(cache, model_id, revision)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{revision[:12]}-", dir=final.parent))
    try:
        for name, (digest, _size) in blobs.items():
            dest = tmp / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(_blob_path(cache, digest), dest)
        manifest = {
            "model": model_id,
            "revision": revision,
            "weights": weights,
            "files": {n: {"sha256": d, "size": s} for n, (d, s) in sorted(blobs.items())},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _fsync_dir(tmp)
        _install(tmp, final, weights)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return CachedModel(model_id, revision, final, len(blobs), sum(s for _, s in blobs.values()), reused=False)


def _install(tmp: Path, final: Path, weights: bool) -> None:
    """Rename the assembled ``tmp`` into place, unless an equal or better snapshot got there first."""
    for _ in range(5):
        try:
            os.rename(tmp, final)
            return
        except OSError:
            try:
                theirs = read_manifest(final)
            except FileNotFoundError:
                if not final.exists():
                    continue  # discarded meanwhile: try again
                theirs = None
            except (OSError, ValueError):
                theirs = None
            if isinstance(theirs, dict) and (theirs.get("weights", False) or not weights):
                # Another run finished the same snapshot first; theirs is as good as ours.
                shutil.rmtree(tmp, ignore_errors=True)
                return
            # Not a snapshot (no manifest), or one without the weights we have: replace it.
            _discard(final)
    os.rename(tmp, final)


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
        tmp = _tmp_name(blob)
        try:
            _link_or_copy(path.resolve(), tmp)
            os.replace(tmp, blob)
        finally:
            tmp.unlink(missing_ok=True)
    return digest, blob.stat().st_size


def _tmp_name(dest: Path) -> Path:
    # Unique per call, not per process: threads of one process may store the same blob at once.
    return dest.with_name(f"{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _atomic_write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(dest)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


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


def _hf_resolve(model_id: str, revision: str, *, token: str | None) -> str:
    """The commit sha a branch or tag points at now, from the hub's model info (runtime/gateways/huggingface.py)."""
    sha = huggingface.resolve(model_id, revision, token=token)
    if not isinstance(sha, str) or not COMMIT_SHA.fullmatch(sha):
        raise PermanentError(
            f"cannot resolve {model_id}@{revision}: the hub answered without a commit sha",
            hint="set model.revision to the commit sha",
        )
    return sha


def _hf_download(
    cache: Path, model_id: str, revision: str, *, weights: bool, token: str | None, force: bool = False
) -> Path:
    """Fetch the repo snapshot into the cache's hf/ (runtime/gateways/huggingface.py): the tokenizer files,
    and the weights when asked."""
    return huggingface.download(
        model_id,
        revision,
        cache_dir=cache / "hf",
        token=token,
        force=force,
        allow_patterns=WEIGHT_PATTERNS if weights else TOKENIZER_PATTERNS,
    )
