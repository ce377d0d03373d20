"""runtime.targets.local.model_cache: the built-in model, and Hugging Face models through the real
huggingface_hub client talking to tests/harness/fake_hf.py on 127.0.0.1 (no internet, no xet)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.errors import PermanentError, TransientError
from runtime.targets.local import model_cache, tiny_model
from runtime.targets.local.model_cache import MANIFEST, ensure_model, read_manifest, snapshot_dir
from tests.harness.fake_hf import FakeHub, FakeRepo, commit_sha

MODEL = "org/tiny-llm"
REV_A = commit_sha("tiny-llm:a")
REV_B = commit_sha("tiny-llm:b")
PRIVATE = "org/private-llm"
GATED = "org/gated-llm"
BIG = "org/big-llm"
TOKEN = "hf_fakeSecretToken0123456789abcdef"  # granted on PRIVATE and GATED
OTHER_TOKEN = "hf_fakeOtherUser0123456789abcdef"  # a known user without access

TOKENIZER = {
    "config.json": b'{"model_type": "llama", "vocab_size": 32}\n',
    "generation_config.json": b'{"eos_token_id": 2}\n',
    "tokenizer.json": b'{"version": "1.0", "model": {"type": "BPE"}}\n' * 50,
    "tokenizer_config.json": b'{"eos_token": "</s>", "chat_template": "{{ messages }}"}\n',
    "special_tokens_map.json": b'{"eos_token": "</s>"}\n',
    "tokenizer.model": bytes(range(256)) * 8,
}
WEIGHTS = bytes(range(251)) * 4096  # ~1 MiB, served as an LFS file through the fake CDN
FILES_A = {
    **TOKENIZER,
    "model.safetensors": WEIGHTS,
    "README.md": b"# tiny\n",
    ".gitattributes": b"*.st lfs\n",
}
# Revision B changes the config and the weights; the tokenizer files are byte-identical.
FILES_B = {
    **FILES_A,
    "config.json": b'{"model_type": "llama", "vocab_size": 33}\n',
    "model.safetensors": WEIGHTS[::-1],
}
TOKENIZER_NAMES = set(TOKENIZER)
# Over huggingface_hub's 10 MiB read chunk, so a dropped transfer has bytes on disk to resume from.
BIG_WEIGHTS = hashlib.sha256(b"seed").digest() * (11 * 1024 * 1024 // 32)
BIG_REV = commit_sha("big")


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    repos = {
        MODEL: FakeRepo({REV_A: FILES_A, REV_B: FILES_B}, branches={"main": REV_B}),
        PRIVATE: FakeRepo({REV_A: FILES_A}, private=True, tokens=frozenset({TOKEN})),
        GATED: FakeRepo({REV_A: FILES_A}, gated=True, tokens=frozenset({TOKEN})),
        BIG: FakeRepo({BIG_REV: {"config.json": b"{}", "model.safetensors": BIG_WEIGHTS}}),
    }
    with FakeHub(repos, extra_tokens={OTHER_TOKEN}, tree_page_size=3) as server:
        yield server


@pytest.fixture
def fake(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The shared hub with a clean log and no faults, and huggingface_hub pointed at it."""
    hub.clear_log()
    hub.clear_faults()
    hub.point_client(monkeypatch)
    yield hub
    assert hub.xet_requests() == []
    assert hub.server_errors == []


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _blobs(cache: Path) -> list[str]:
    return sorted(os.listdir(cache / "blobs" / "sha256"))


def _leftovers(cache: Path) -> list[str]:
    """Temporary names anywhere under the cache: assembly dirs, blob temps, hf partial files."""
    return [
        str(p.relative_to(cache))
        for p in cache.rglob("*")
        if p.name.startswith(".tmp-") or ".tmp-" in p.name or p.name.endswith(".incomplete")
    ]


def _assert_snapshot(cached: model_cache.CachedModel, expected: dict[str, bytes]) -> None:
    manifest = read_manifest(cached.path)
    assert manifest["model"] == cached.model_id and manifest["revision"] == cached.revision
    assert set(manifest["files"]) == set(expected)
    for name, data in expected.items():
        assert (cached.path / name).read_bytes() == data
        assert manifest["files"][name] == {"sha256": _sha(data), "size": len(data)}
    assert cached.files == len(expected) and cached.bytes == sum(len(d) for d in expected.values())


def _stats(snap: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in snap.iterdir()}


# ---- the built-in model ----------------------------------------------------------------------------


def test_builtin_model_materialises_with_matching_manifest(tmp_path: Path) -> None:
    files = tiny_model.build_files()
    cached = ensure_model(tmp_path, tiny_model.MODEL_ID, None)

    assert cached.reused is False
    assert cached.revision == tiny_model.revision(files)
    assert cached.path == snapshot_dir(tmp_path, tiny_model.MODEL_ID, cached.revision)
    _assert_snapshot(cached, files)
    assert _blobs(tmp_path) == sorted({_sha(d) for d in files.values()})
    # Snapshot files are hard links to their blobs (one copy on disk).
    for name, data in files.items():
        assert (cached.path / name).stat().st_ino == (
            tmp_path / "blobs" / "sha256" / _sha(data)
        ).stat().st_ino
    assert _leftovers(tmp_path) == []


def test_builtin_model_second_call_is_reused_without_rewriting(tmp_path: Path) -> None:
    first = ensure_model(tmp_path, tiny_model.MODEL_ID, None)
    before = _stats(first.path)
    blobs_before = _blobs(tmp_path)

    again = ensure_model(tmp_path, tiny_model.MODEL_ID, None)
    verified = ensure_model(tmp_path, tiny_model.MODEL_ID, None, verify=True)

    assert again.reused is True and verified.reused is True
    assert again.path == first.path and again.revision == first.revision
    assert (again.files, again.bytes) == (first.files, first.bytes)
    assert _stats(first.path) == before  # same inodes, same mtimes: nothing rewritten
    assert _blobs(tmp_path) == blobs_before


def test_builtin_verify_detects_in_place_corruption_and_rebuilds(tmp_path: Path) -> None:
    files = tiny_model.build_files()
    cached = ensure_model(tmp_path, tiny_model.MODEL_ID, None)
    target = cached.path / "tokenizer_config.json"
    # Flip one byte in place, keeping the size: this also corrupts the blob (same inode).
    with open(target, "r+b") as fh:
        first = fh.read(1)
        fh.seek(0)
        fh.write(bytes([first[0] ^ 0xFF]))

    assert ensure_model(tmp_path, tiny_model.MODEL_ID, None).reused is True  # sizes only: not noticed
    rebuilt = ensure_model(tmp_path, tiny_model.MODEL_ID, None, verify=True)

    assert rebuilt.reused is False
    _assert_snapshot(rebuilt, files)
    blob = tmp_path / "blobs" / "sha256" / _sha(files["tokenizer_config.json"])
    assert _sha(blob.read_bytes()) == blob.name  # the blob was rewritten, not reused corrupted
    assert ensure_model(tmp_path, tiny_model.MODEL_ID, None, verify=True).reused is True
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("damage", ["missing file", "truncated file", "missing manifest", "garbled manifest"])
def test_builtin_damaged_snapshot_is_rebuilt(tmp_path: Path, damage: str) -> None:
    files = tiny_model.build_files()
    cached = ensure_model(tmp_path, tiny_model.MODEL_ID, None)
    if damage == "missing file":
        (cached.path / "vocab.txt").unlink()
    elif damage == "truncated file":
        (cached.path / "vocab.txt").unlink()  # a fresh inode, so the blob stays intact
        (cached.path / "vocab.txt").write_bytes(files["vocab.txt"][:100])
    elif damage == "missing manifest":
        (cached.path / MANIFEST).unlink()
    else:
        (cached.path / MANIFEST).write_text('{"files": ')

    rebuilt = ensure_model(tmp_path, tiny_model.MODEL_ID, None)

    assert rebuilt.reused is False and rebuilt.path == cached.path
    _assert_snapshot(rebuilt, files)
    assert ensure_model(tmp_path, tiny_model.MODEL_ID, None).reused is True
    assert _leftovers(tmp_path) == []


def test_builtin_concurrent_calls_end_with_one_snapshot(tmp_path: Path) -> None:
    results = _run_concurrently(4, lambda: ensure_model(tmp_path, tiny_model.MODEL_ID, None))
    assert len({r.path for r in results}) == 1
    _assert_snapshot(results[0], tiny_model.build_files())
    assert os.listdir(results[0].path.parent) == [results[0].revision]
    assert _leftovers(tmp_path) == []


# ---- Hugging Face models through the fake hub ------------------------------------------------------


def test_hf_model_at_pinned_sha_tokenizer_only_then_weights(tmp_path: Path, fake: FakeHub) -> None:
    tok = ensure_model(tmp_path, MODEL, REV_A)

    assert tok.reused is False and tok.path == snapshot_dir(tmp_path, MODEL, REV_A)
    _assert_snapshot(tok, TOKENIZER)  # README.md, .gitattributes and the weights are not fetched
    assert read_manifest(tok.path)["weights"] is False
    fetched = {r.filename for r in fake.requests("GET") if r.filename}
    assert fetched == TOKENIZER_NAMES
    assert all(r.auth == "none" for r in fake.requests())
    # The revision is a commit sha: no model-info call, just the tree listing (paginated) and files.
    assert not [r for r in fake.requests() if "/revision/" in r.path]
    assert len([r for r in fake.requests() if "/tree/" in r.path]) >= 3

    fake.clear_log()
    full = ensure_model(tmp_path, MODEL, REV_A, weights=True)

    assert full.reused is False and full.path == tok.path
    _assert_snapshot(full, {**TOKENIZER, "model.safetensors": WEIGHTS})
    assert read_manifest(full.path)["weights"] is True
    # Only the weights went over the wire (through the LFS redirect to the fake CDN).
    assert {r.filename for r in fake.requests("GET") if r.filename} == {"model.safetensors"}
    assert any(r.status == 302 and r.filename == "model.safetensors" for r in fake.requests("HEAD"))
    assert any(r.path.startswith("/cdn-lfs/") and r.status == 200 for r in fake.requests("GET"))
    # A snapshot with weights also serves tokenizer-only requests.
    assert ensure_model(tmp_path, MODEL, REV_A).reused is True
    assert ensure_model(tmp_path, MODEL, REV_A, weights=True).reused is True
    assert _leftovers(tmp_path) == []


def test_hf_second_call_does_not_touch_the_network(tmp_path: Path, fake: FakeHub) -> None:
    first = ensure_model(tmp_path, MODEL, REV_A, weights=True)
    log = fake.requests()
    before = _stats(first.path)

    again = ensure_model(tmp_path, MODEL, REV_A, weights=True)
    verified = ensure_model(tmp_path, MODEL, REV_A, weights=True, verify=True)

    assert again.reused is True and verified.reused is True and again.path == first.path
    assert fake.requests() == log
    assert _stats(first.path) == before


def test_hf_branch_revision_is_resolved_through_model_info(tmp_path: Path, fake: FakeHub) -> None:
    cached = ensure_model(tmp_path, MODEL, "main")

    # Cached and reported under the commit the branch points at, not under the branch name.
    assert (cached.revision, cached.requested_revision) == (REV_B, "main")
    assert cached.path == snapshot_dir(tmp_path, MODEL, REV_B)
    assert os.listdir(cached.path.parent) == [REV_B]
    assert cached.as_dict()["revision"] == REV_B and cached.as_dict()["requested_revision"] == "main"
    _assert_snapshot(cached, {**TOKENIZER, "config.json": FILES_B["config.json"]})
    assert [r.status for r in fake.requests() if r.path == f"/api/models/{MODEL}/revision/main"] == [200]
    assert {r.path.split("/resolve/")[1].split("/")[0] for r in fake.requests("GET") if r.filename} == {REV_B}

    # The same commit asked for by its sha is that snapshot, reused without a call.
    fake.clear_log()
    by_sha = ensure_model(tmp_path, MODEL, REV_B)
    assert by_sha.reused is True and by_sha.path == cached.path and by_sha.requested_revision == REV_B
    assert fake.requests() == []


def test_hf_branch_is_looked_up_each_time_and_a_moved_branch_gets_a_new_snapshot(
    tmp_path: Path, hub: FakeHub, fake: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = FakeRepo({REV_A: FILES_A, REV_B: FILES_B}, branches={"main": REV_A, "v1": REV_A})
    monkeypatch.setitem(hub.repos, "org/moving-llm", repo)
    info = "/api/models/org/moving-llm/revision/main"

    first = ensure_model(tmp_path, "org/moving-llm", "main", weights=True)
    again = ensure_model(tmp_path, "org/moving-llm", "main", weights=True)
    tag = ensure_model(tmp_path, "org/moving-llm", "v1", weights=True)  # another name, same commit

    assert (first.revision, first.reused, again.reused, tag.reused) == (REV_A, False, True, True)
    assert again.path == tag.path == first.path and tag.requested_revision == "v1"
    # Every call asked the hub where the branch points (one model-info call each), nothing else twice.
    assert [r.status for r in fake.requests() if r.path == info] == [200, 200]
    assert len([r for r in fake.requests("GET") if r.filename == "model.safetensors"]) == 1

    repo.branches["main"] = REV_B  # a new commit is pushed to main
    fake.clear_log()
    moved = ensure_model(tmp_path, "org/moving-llm", "main", weights=True)

    assert (moved.revision, moved.requested_revision, moved.reused) == (REV_B, "main", False)
    assert moved.path == snapshot_dir(tmp_path, "org/moving-llm", REV_B) != first.path
    _assert_snapshot(
        moved, {**TOKENIZER, "config.json": FILES_B["config.json"], "model.safetensors": WEIGHTS[::-1]}
    )
    _assert_snapshot(first, {**TOKENIZER, "model.safetensors": WEIGHTS})  # the old commit's snapshot stays
    assert [r.status for r in fake.requests() if r.path == info] == [200]
    assert sorted(os.listdir(first.path.parent)) == sorted([REV_A, REV_B])
    assert _leftovers(tmp_path) == []


def test_hf_cached_sha_never_contacts_the_hub(
    tmp_path: Path, fake: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ensure_model(tmp_path, MODEL, REV_A, weights=True)
    assert first.requested_revision == REV_A and first.revision == REV_A
    log = fake.requests()
    assert not [r for r in log if "/revision/" in r.path]  # not even on the first fetch

    down = FakeHub().start()
    down.point_client(monkeypatch)
    down.stop()  # any request now fails to connect

    again = ensure_model(tmp_path, MODEL, REV_A, weights=True, verify=True)

    assert again.reused is True and again.path == first.path and again.revision == REV_A
    assert fake.requests() == log
    # A branch cannot be resolved without the hub, even with its commit cached: transient, not stale.
    with pytest.raises(TransientError, match="revision lookup of org/tiny-llm@main failed"):
        ensure_model(tmp_path, MODEL, "main")


def test_hf_branch_in_offline_mode_is_permanent_with_a_hint(
    tmp_path: Path, fake: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PermanentError, match="HF_HUB_OFFLINE") as info:
        ensure_model(tmp_path, MODEL, "main")
    assert "commit sha" in str(info.value.hint)
    assert fake.requests() == []


def test_hf_private_branch_resolves_with_the_token_and_never_leaks_it(
    tmp_path: Path, hub: FakeHub, fake: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = FakeRepo({REV_A: FILES_A}, branches={"main": REV_A}, private=True, tokens=frozenset({TOKEN}))
    monkeypatch.setitem(hub.repos, "org/private-branch", repo)

    failures: list[BaseException] = []
    for token in (None, OTHER_TOKEN):
        with pytest.raises(PermanentError, match="cannot resolve org/private-branch@main") as info:
            ensure_model(tmp_path, "org/private-branch", "main", token=token)
        failures.append(info.value)
    assert [(r.auth, r.status) for r in fake.requests()] == [("none", 401), ("valid", 404)]

    fake.clear_log()
    cached = ensure_model(tmp_path, "org/private-branch", "main", token=TOKEN)

    assert cached.revision == REV_A
    _assert_snapshot(cached, TOKENIZER)
    assert fake.requests() and all(r.auth == "valid" for r in fake.requests())
    for exc in failures:
        for text in _exception_texts(exc):
            assert TOKEN not in text and OTHER_TOKEN not in text


def test_hf_interrupted_download_is_transient_and_rerun_completes(tmp_path: Path, fake: FakeHub) -> None:
    # The body is cut mid-way; the client's own retry (same call) then gets a 500: the call fails.
    fake.cut("tokenizer.json", after=100)
    fake.fail("tokenizer.json", nth=2, status=500)

    with pytest.raises(TransientError) as info:
        ensure_model(tmp_path, MODEL, REV_A)
    assert MODEL in str(info.value) and REV_A in str(info.value)
    assert not snapshot_dir(tmp_path, MODEL, REV_A).exists()
    assert [r.status for r in fake.requests("GET", "tokenizer.json")] == [200, 500]
    assert fake.requests("GET", "tokenizer.json")[0].sent == 100

    fake.clear_log()
    cached = ensure_model(tmp_path, MODEL, REV_A)

    _assert_snapshot(cached, TOKENIZER)
    # The files that did complete were kept in hf/: the rerun fetched only the failed one.
    assert [r.filename for r in fake.requests("GET") if r.filename] == ["tokenizer.json"]
    assert _blobs(tmp_path) == sorted({_sha(d) for d in TOKENIZER.values()})
    assert _leftovers(tmp_path) == []


def test_hf_dropped_connection_is_resumed_with_a_range_request(tmp_path: Path, fake: FakeHub) -> None:
    cut_at = 10 * 1024 * 1024 + 4096
    fake.cut("model.safetensors", after=cut_at)

    cached = ensure_model(tmp_path, BIG, BIG_REV, weights=True)

    _assert_snapshot(cached, {"config.json": b"{}", "model.safetensors": BIG_WEIGHTS})
    gets = fake.requests("GET", "model.safetensors")
    assert [r.status for r in gets] == [200, 206]
    assert gets[0].sent == cut_at
    start = int(gets[1].range.removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= cut_at and gets[1].sent == len(BIG_WEIGHTS) - start
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("revision", [commit_sha("no such commit"), "no-such-branch"])
def test_hf_missing_revision_is_permanent_and_named(tmp_path: Path, fake: FakeHub, revision: str) -> None:
    with pytest.raises(PermanentError) as info:
        ensure_model(tmp_path, MODEL, revision)

    assert MODEL in str(info.value) and revision in str(info.value)
    assert "RevisionNotFound" in str(info.value)
    assert any(r.status == 404 for r in fake.requests())
    assert not snapshot_dir(tmp_path, MODEL, revision).exists()


def test_hf_missing_repo_and_unpinned_revision_are_permanent(tmp_path: Path, fake: FakeHub) -> None:
    with pytest.raises(PermanentError, match="org/nope"):
        ensure_model(tmp_path, "org/nope", REV_A)
    assert [r.status for r in fake.requests()] == [401]
    with pytest.raises(PermanentError, match="pinned revision"):
        ensure_model(tmp_path, MODEL, None)


def test_hf_private_repo_with_token_and_the_token_never_leaks(tmp_path: Path, fake: FakeHub) -> None:
    failures: list[BaseException] = []
    for token in (None, OTHER_TOKEN, "hf_unknownToken0123456789abcdef"):
        with pytest.raises(PermanentError) as info:
            ensure_model(tmp_path, PRIVATE, REV_A, token=token)
        failures.append(info.value)
    assert [r.auth for r in fake.requests()] == ["none", "valid", "invalid"]
    assert [r.status for r in fake.requests()] == [401, 404, 401]

    fake.clear_log()
    cached = ensure_model(tmp_path, PRIVATE, REV_A, token=TOKEN, weights=True)

    _assert_snapshot(cached, {**TOKENIZER, "model.safetensors": WEIGHTS})
    assert fake.requests() and all(r.auth == "valid" for r in fake.requests())

    # A failure with the right token (the hub fails one file) does not show it either.
    fake.fail("config.json", status=500)
    with pytest.raises(TransientError) as info:
        ensure_model(tmp_path / "other", PRIVATE, REV_A, token=TOKEN)
    failures.append(info.value)

    for exc in failures:
        for text in _exception_texts(exc):
            assert TOKEN not in text and OTHER_TOKEN not in text and "hf_unknownToken" not in text
    for path in list(tmp_path.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 1_000_000:
            assert TOKEN.encode() not in path.read_bytes(), path


def test_hf_gated_repo_needs_a_granted_token(tmp_path: Path, fake: FakeHub) -> None:
    with pytest.raises(PermanentError, match="GatedRepoError"):
        ensure_model(tmp_path, GATED, REV_A)
    with pytest.raises(PermanentError, match="GatedRepoError"):
        ensure_model(tmp_path, GATED, REV_A, token=OTHER_TOKEN)
    assert sorted({r.status for r in fake.requests() if r.filename}) == [401, 403]

    _assert_snapshot(ensure_model(tmp_path, GATED, REV_A, token=TOKEN), TOKENIZER)


def test_hf_unreachable_hub_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    down = FakeHub().start()
    down.point_client(monkeypatch)
    down.stop()

    with pytest.raises(TransientError, match=MODEL):
        ensure_model(tmp_path, MODEL, REV_A)


def test_hf_verify_refetches_a_file_corrupted_in_place(tmp_path: Path, fake: FakeHub) -> None:
    cached = ensure_model(tmp_path, MODEL, REV_A)
    with open(cached.path / "tokenizer.json", "r+b") as fh:
        fh.write(b"X")  # same size; the blob and huggingface_hub's copy share this inode
    fake.clear_log()

    rebuilt = ensure_model(tmp_path, MODEL, REV_A, verify=True)

    assert rebuilt.reused is False
    _assert_snapshot(rebuilt, TOKENIZER)
    assert "tokenizer.json" in {r.filename for r in fake.requests("GET")}
    for data in TOKENIZER.values():  # every blob holds what its name says
        blob = tmp_path / "blobs" / "sha256" / _sha(data)
        assert _sha(blob.read_bytes()) == blob.name
    assert ensure_model(tmp_path, MODEL, REV_A, verify=True).reused is True


def test_hf_concurrent_calls_end_with_one_valid_snapshot(tmp_path: Path, fake: FakeHub) -> None:
    results = _run_concurrently(2, lambda: ensure_model(tmp_path, MODEL, REV_A, weights=True))

    assert len({r.path for r in results}) == 1
    expected = {**TOKENIZER, "model.safetensors": WEIGHTS}
    _assert_snapshot(results[0], expected)
    assert os.listdir(results[0].path.parent) == [REV_A]
    assert _blobs(tmp_path) == sorted({_sha(d) for d in expected.values()})
    assert _leftovers(tmp_path) == []


def test_identical_files_across_revisions_share_one_blob(tmp_path: Path, fake: FakeHub) -> None:
    a = ensure_model(tmp_path, MODEL, REV_A, weights=True)
    b = ensure_model(tmp_path, MODEL, REV_B, weights=True)

    _assert_snapshot(
        b, {**TOKENIZER, "config.json": FILES_B["config.json"], "model.safetensors": WEIGHTS[::-1]}
    )
    ma, mb = read_manifest(a.path)["files"], read_manifest(b.path)["files"]
    for name in TOKENIZER_NAMES - {"config.json"}:
        assert ma[name] == mb[name]
        assert (a.path / name).stat().st_ino == (b.path / name).stat().st_ino
    assert ma["config.json"] != mb["config.json"]
    distinct = {_sha(d) for files in (FILES_A, FILES_B) for n, d in files.items() if n in ma}
    assert _blobs(tmp_path) == sorted(distinct)


# ---- helpers -----------------------------------------------------------------------------------------


def _run_concurrently(n: int, fn) -> list[model_cache.CachedModel]:
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    return results


def _exception_texts(exc: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield str(getattr(current, "hint", "") or "")
        current = current.__cause__ or current.__context__
