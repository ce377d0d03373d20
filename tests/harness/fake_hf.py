"""A fake of the Hugging Face Hub HTTP API that the real ``huggingface_hub`` client downloads from.

Why a fake: the model cache must be tested against the client it really uses (huggingface_hub 1.33's
``snapshot_download``), including its error classification, redirects, resume and locking, but in
seconds and without the internet. The wire format follows what that client reads (see
``huggingface_hub/_snapshot_download.py``, ``file_download.py``, ``hf_api.py`` and ``utils/_http.py``):

- ``GET /api/models/{repo}/revision/{rev}`` (and ``/api/models/{repo}``): model info, ``sha`` is the
  resolved commit, ``siblings`` lists ``rfilename`` (with ``size``/``blobId``/``lfs`` when
  ``?blobs=true``). ``snapshot_download`` calls it only when the revision is not a 40-hex commit.
- ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=&expand=``: the file listing, paginated with a
  ``Link: <...>; rel="next"`` header; files carry ``oid`` (git blob sha1), ``size`` and, for LFS
  files, ``lfs: {oid: sha256, size, pointerSize}``. No ``xetHash`` is ever listed.
- ``HEAD``/``GET /{repo}/resolve/{rev}/{file}``: regular files answer 200 with ``X-Repo-Commit``,
  ``ETag`` (quoted git blob sha1), ``Content-Length`` and ``Accept-Ranges: bytes``. LFS files answer
  302 with ``X-Linked-Etag`` (sha256), ``X-Linked-Size`` and a ``Location`` on a fake CDN path
  (``/cdn-lfs/{sha256}?...``). The CDN lives on the same host (tests talk to 127.0.0.1 only), so
  the client follows the redirect even on HEAD; like a Hub mirror, the CDN response repeats
  ``X-Repo-Commit`` and ``X-Linked-*``. ``lfs_redirect=False`` serves LFS bytes from ``/resolve``.
- ``Range: bytes=a-``/``a-b``/``-n`` -> 206 with ``Content-Range`` (416 past the end), on both paths.
- A renamed repo (``rename(old, new)``) answers 307 to the new name, on the API and on ``/resolve``.
- Errors carry the headers the client classifies by: ``X-Error-Code: RepoNotFound`` (401 without a
  token, 404 with a valid one: missing repo, or private repo without access), ``GatedRepo`` (401 no
  token / 403 token not granted, on ``/resolve`` only: a gated repo's info and tree are public),
  ``RevisionNotFound`` (404), ``EntryNotFound`` (404, with ``X-Repo-Commit``); an unknown bearer
  token gets 401 ``X-Error-Message: Invalid credentials in Authorization header`` and no code.
- No Xet: no ``X-Xet-Hash`` header, no ``Link: <...>; rel="xet-auth"``, no ``xetHash`` in the tree,
  so the client (hf_xet installed or not) downloads over plain HTTP. Any request whose path mentions
  ``xet`` is answered 404 and is visible in the log (``xet_requests()``).

Fault injection (``fail``/``cut``): the nth GET (or HEAD) of a file, counted from when the fault is
added, is answered with a status (default 500) or has its body cut after K bytes (the connection is
closed mid-body, as a dropped download). Each fault fires ``times`` times, then stays inert.

The request log (``requests()``) records method, path, query, Range, status, body bytes sent and
``auth`` ("none" | "valid" | "invalid"): whether a bearer token was sent and was known. The token
itself is never stored or printed.

Not covered: uploads/commits, datasets and spaces, Xet, ``expand=true`` last-commit data, per-file
``?download=true``, gzip transfer encoding, OAuth/whoami, rate limiting headers (429 can still be
injected with ``fail(..., status=429)``), real signed CDN URLs on another host (hence no check that
the client drops the Authorization header off the Hub).

Use: ``with FakeHub() as hub: hub.add_repo("org/name", FakeRepo(...)); hub.point_client(monkeypatch)``.
Binds 127.0.0.1 only, port 0 (the OS picks a free one).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

LFS_PATTERNS = ("*.safetensors", "*.bin", "*.gguf", "*.pt", "*.pth", "*.onnx", "*.msgpack", "*.h5", "*.ckpt")
_LAST_MODIFIED = "2025-01-01T00:00:00.000Z"


def commit_sha(seed: str) -> str:
    """A deterministic 40-hex commit id for test data."""
    return hashlib.sha1(seed.encode()).hexdigest()


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    return (
        "version https://git-lfs.github.com/spec/v1\n"
        f"oid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n"
    ).encode()


class _Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer whose handler errors go to ``on_error`` (the hub records them) instead of
    stderr."""

    on_error: Callable[[Any, Any], None] | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.on_error is None:
            super().handle_error(request, client_address)
        else:
            self.on_error(request, client_address)


@dataclass
class FakeRepo:
    """A model repo: commit sha -> {path: bytes}, and branch/tag names -> commit sha."""

    commits: dict[str, dict[str, bytes]]
    branches: dict[str, str] = field(default_factory=dict)
    private: bool = False
    gated: bool = False
    tokens: frozenset[str] = frozenset()  # bearer tokens granted access (private or gated repos)

    def resolve(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.branches.get(revision)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded, without the query
    query: dict[str, str]
    range: str | None
    status: int
    sent: int  # body bytes written
    auth: str  # "none" | "valid" | "invalid"; never the token
    filename: str | None = None  # the repo file a /resolve or CDN request was about


@dataclass
class _Fault:
    filename: str
    repo_id: str | None
    method: str
    nth: int
    times: int
    status: int | None = None
    cut_after: int | None = None
    seen: int = 0
    fired: int = 0


@dataclass
class _Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    ranged: bool = False  # honour Range on GET
    filename: str | None = None  # for fault matching
    repo_id: str | None = None


_API = re.compile(
    r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)?)(?:/(?P<kind>revision|tree)/(?P<rev>[^/]+)(?P<rest>/.*)?)?$"
)
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_CDN = re.compile(r"^/cdn-lfs/(?P<sha>[0-9a-f]{64})$")


class FakeHub:
    def __init__(
        self,
        repos: dict[str, FakeRepo] | None = None,
        *,
        lfs_patterns: Iterable[str] = LFS_PATTERNS,
        lfs_redirect: bool = True,
        tree_page_size: int = 1000,
        extra_tokens: Iterable[str] = (),
    ) -> None:
        self.repos: dict[str, FakeRepo] = dict(repos or {})
        self.renamed: dict[str, str] = {}
        self.lfs_patterns = tuple(lfs_patterns)
        self.lfs_redirect = lfs_redirect
        self.tree_page_size = tree_page_size
        self.extra_tokens = set(extra_tokens)  # known users' tokens that own no repo here
        self.server_errors: list[str] = []  # handler exceptions (type and message), for debugging
        self._log: list[Request] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        # Requests being answered: a handler records a request after writing its reply, so a client
        # can see a 404 before the log does; requests() waits for these to finish (bounded).
        self._in_flight = 0
        self._settled = threading.Condition(self._lock)
        self._conns: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeHub is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.on_error = self._handle_error
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hf", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop open keep-alive connections, so later requests are refused."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def point_client(self, monkeypatch: Any) -> None:
        """Point the in-process huggingface_hub at this fake, via a pytest ``monkeypatch``.

        huggingface_hub reads HF_ENDPOINT into ``constants.ENDPOINT`` (and the resolve URL template)
        at import time, so setting the environment variable alone is too late once it is imported;
        HfApi and hf_hub_url read these constants at call time. Telemetry is turned off so the client
        does not ask the endpoint for its agent registry (nor write it under HF_HOME).
        """
        from huggingface_hub import constants

        monkeypatch.setenv("HF_ENDPOINT", self.url)
        monkeypatch.setattr(constants, "ENDPOINT", self.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", self.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {"127.0.0.1"})
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    # ---- data ------------------------------------------------------------------------------------

    def add_repo(self, repo_id: str, repo: FakeRepo) -> FakeRepo:
        self.repos[repo_id] = repo
        return repo

    def rename(self, old: str, new: str) -> None:
        """Requests for ``old`` now answer 307 to ``new`` (as the Hub does after a repo is renamed)."""
        self.renamed[old] = new

    def is_lfs(self, path: str) -> bool:
        return any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], p) for p in self.lfs_patterns)

    # ---- faults and log --------------------------------------------------------------------------

    def fail(
        self,
        filename: str,
        *,
        nth: int = 1,
        status: int = 500,
        times: int = 1,
        method: str = "GET",
        repo_id: str | None = None,
    ) -> None:
        """Answer the nth (from now) ``method`` request for ``filename`` with ``status``, ``times`` times."""
        with self._lock:
            self._faults.append(_Fault(filename, repo_id, method, nth, times, status=status))

    def cut(
        self, filename: str, *, after: int, nth: int = 1, times: int = 1, repo_id: str | None = None
    ) -> None:
        """Close the connection after ``after`` body bytes of the nth (from now) GET for ``filename``."""
        with self._lock:
            self._faults.append(_Fault(filename, repo_id, "GET", nth, times, cut_after=after))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests(self, method: str | None = None, filename: str | None = None) -> list[Request]:
        with self._settled:
            self._settled.wait_for(lambda: self._in_flight == 0, timeout=5.0)
            log = list(self._log)
        return [
            r
            for r in log
            if (method is None or r.method == method) and (filename is None or r.filename == filename)
        ]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def xet_requests(self) -> list[Request]:
        return [r for r in self.requests() if "xet" in r.path.lower()]

    def _begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _end(self, req: Request | None) -> None:
        with self._settled:
            if req is not None:
                self._log.append(req)
            self._in_flight -= 1
            self._settled.notify_all()

    def _take_fault(self, method: str, reply: _Reply) -> _Fault | None:
        if reply.filename is None:
            return None
        chosen = None
        with self._lock:
            for fault in self._faults:  # every matching fault counts the request; the first due one fires
                if fault.method != method or fault.filename != reply.filename:
                    continue
                if fault.repo_id is not None and fault.repo_id != reply.repo_id:
                    continue
                fault.seen += 1
                if chosen is None and fault.seen >= fault.nth and fault.fired < fault.times:
                    fault.fired += 1
                    chosen = fault
        return chosen

    def _handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # client went away (e.g. after a cut, or at interpreter exit)
        self.server_errors.append(f"{type(exc).__name__}: {exc}")

    # ---- routing ---------------------------------------------------------------------------------

    def _auth(self, header: str | None) -> tuple[str, str | None]:
        if not header:
            return "none", None
        scheme, _, token = header.partition(" ")
        token = token.strip()
        known = set(self.extra_tokens).union(*(r.tokens for r in self.repos.values()))
        if scheme.lower() != "bearer" or token not in known:
            return "invalid", None
        return "valid", token

    def route(
        self, method: str, raw_path: str, query: dict[str, str], auth: str, token: str | None
    ) -> _Reply:
        if auth == "invalid":
            return _error(401, None, "Invalid credentials in Authorization header")
        if "xet" in raw_path.lower():
            return _error(404, None, "Xet is not served by this fake")
        if m := _API.match(raw_path):
            return self._api(m, raw_path, query, auth, token)
        if m := _CDN.match(raw_path):
            return self._cdn(m["sha"], query)
        if m := _RESOLVE.match(raw_path):
            return self._resolve(m, raw_path, query, auth, token)
        return _error(404, None, "Not found")

    def _repo_access(self, repo_id: str, auth: str, token: str | None, *, files: bool) -> FakeRepo | _Reply:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and token not in repo.tokens):
            return _error(401 if auth == "none" else 404, "RepoNotFound", "Repository not found")
        if repo.gated and files and token not in repo.tokens:
            if auth == "none":
                return _error(
                    401,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted. You must have access to "
                    "it and be authenticated to access it. Please log in.",
                )
            return _error(
                403,
                "GatedRepo",
                f"Access to model {repo_id} is restricted and you are not in the "
                "authorized list. Visit the repo page to ask for access.",
            )
        return repo

    def _redirect_renamed(self, repo_id: str, raw_path: str, query: dict[str, str]) -> _Reply | None:
        new = self.renamed.get(repo_id)
        if new is None:
            return None
        location = raw_path.replace(quote(repo_id), quote(new), 1)
        if query:
            location += "?" + urlencode(query)
        return _Reply(307, {"Location": location}, b"Temporary Redirect. Redirecting to " + location.encode())

    def _api(self, m: re.Match, raw_path: str, query: dict[str, str], auth: str, token: str | None) -> _Reply:
        repo_id = unquote(m["repo"])
        if redirect := self._redirect_renamed(repo_id, raw_path, query):
            return redirect
        repo = self._repo_access(repo_id, auth, token, files=False)
        if isinstance(repo, _Reply):
            return repo
        revision = unquote(m["rev"]) if m["rev"] else "main"
        commit = repo.resolve(revision)
        if commit is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = repo.commits[commit]
        if m["kind"] == "tree":
            return self._tree(raw_path, query, files, unquote(m["rest"] or "").strip("/"))
        siblings = []
        for name in sorted(files):
            sib: dict[str, Any] = {"rfilename": name}
            if query.get("blobs") in ("true", "True", "1"):
                sib.update(self._entry(name, files[name]))
                sib.pop("path"), sib.pop("type"), sib.pop("oid")
                sib["blobId"] = git_blob_sha1(files[name])
            siblings.append(sib)
        info = {
            "_id": commit_sha("id:" + repo_id)[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0] if "/" in repo_id else None,
            "sha": commit,
            "lastModified": _LAST_MODIFIED,
            "createdAt": _LAST_MODIFIED,
            "private": repo.private,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "library_name": "transformers",
            "siblings": siblings,
        }
        return _json_reply(info)

    def _entry(self, name: str, data: bytes) -> dict[str, Any]:
        if self.is_lfs(name):
            pointer = lfs_pointer(data)
            return {
                "type": "file",
                "oid": git_blob_sha1(pointer),
                "size": len(data),
                "path": name,
                "lfs": {
                    "oid": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": len(pointer),
                },
            }
        return {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": name}

    def _tree(self, raw_path: str, query: dict[str, str], files: dict[str, bytes], under: str) -> _Reply:
        recursive = query.get("recursive", "false").lower() in ("true", "1")
        prefix = under + "/" if under else ""
        if under and under in files:
            return _error(400, None, f"{under} is a file, not a directory")
        entries: dict[str, dict[str, Any]] = {}
        for name in sorted(files):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :].split("/")
            # Folders on the way to the file, as the Hub lists them (recursively or only the first level).
            for depth in range(1, len(rest) if recursive else min(len(rest), 2)):
                folder = prefix + "/".join(rest[:depth])
                entries.setdefault(
                    folder,
                    {"type": "directory", "oid": git_blob_sha1(folder.encode()), "size": 0, "path": folder},
                )
            if recursive or len(rest) == 1:
                entries[name] = self._entry(name, files[name])
        if under and not entries:
            return _error(404, "EntryNotFound", f"{under} does not exist")
        listing = list(entries.values())
        start = int(query.get("cursor", "0") or 0)
        page = listing[start : start + self.tree_page_size]
        headers = {}
        if start + self.tree_page_size < len(listing):
            nxt = {**query, "cursor": str(start + self.tree_page_size)}
            headers["Link"] = f'<{self.url}{raw_path}?{urlencode(nxt)}>; rel="next"'
        return _json_reply(page, headers)

    def _resolve(
        self, m: re.Match, raw_path: str, query: dict[str, str], auth: str, token: str | None
    ) -> _Reply:
        repo_id = unquote(m["repo"])
        if redirect := self._redirect_renamed(repo_id, raw_path, query):
            return redirect
        repo = self._repo_access(repo_id, auth, token, files=True)
        if isinstance(repo, _Reply):
            return repo
        revision, filename = unquote(m["rev"]), unquote(m["file"])
        commit = repo.resolve(revision)
        if commit is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = repo.commits[commit]
        if filename not in files:
            reply = _error(404, "EntryNotFound", "Entry not found")
            reply.headers["X-Repo-Commit"] = commit
            return reply
        data = files[filename]
        if self.is_lfs(filename):
            sha256 = hashlib.sha256(data).hexdigest()
            linked = {
                "X-Repo-Commit": commit,
                "X-Linked-Etag": f'"{sha256}"',
                "X-Linked-Size": str(len(data)),
            }
            if self.lfs_redirect:
                location = f"{self.url}/cdn-lfs/{sha256}?" + urlencode(
                    {"repo": repo_id, "commit": commit, "filename": filename}
                )
                body = b"Found. Redirecting to " + location.encode()
                return _Reply(
                    302,
                    {
                        **linked,
                        "ETag": f'"{git_blob_sha1(lfs_pointer(data))}"',
                        "Location": location,
                        "Content-Type": "text/plain; charset=utf-8",
                    },
                    body,
                    filename=filename,
                    repo_id=repo_id,
                )
            return _Reply(
                200,
                {**linked, "ETag": f'"{sha256}"', **_file_headers(filename)},
                data,
                ranged=True,
                filename=filename,
                repo_id=repo_id,
            )
        return _Reply(
            200,
            {"X-Repo-Commit": commit, "ETag": f'"{git_blob_sha1(data)}"', **_file_headers(filename)},
            data,
            ranged=True,
            filename=filename,
            repo_id=repo_id,
        )

    def _cdn(self, sha256: str, query: dict[str, str]) -> _Reply:
        """The fake CDN: serves LFS bytes by sha256 (the query stands in for a signed URL's claims)."""
        repo = self.repos.get(query.get("repo", ""))
        files = repo.commits.get(query.get("commit", ""), {}) if repo else {}
        data = files.get(query.get("filename", ""))
        if data is None or hashlib.sha256(data).hexdigest() != sha256:
            return _Reply(
                403, {"Content-Type": "application/xml"}, b"<Error><Code>AccessDenied</Code></Error>"
            )
        filename = query["filename"]
        headers = {
            "ETag": f'"{sha256}"',
            "X-Repo-Commit": query["commit"],
            "X-Linked-Etag": f'"{sha256}"',
            "X-Linked-Size": str(len(data)),
            **_file_headers(filename),
        }
        return _Reply(200, headers, data, ranged=True, filename=filename, repo_id=query["repo"])


def _file_headers(filename: str) -> dict[str, str]:
    base = filename.rsplit("/", 1)[-1]
    return {
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(base)}; filename=\"{base}\";",
    }


def _json_reply(obj: Any, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(
        200, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, json.dumps(obj).encode()
    )


def _error(status: int, code: str | None, message: str) -> _Reply:
    headers = {"Content-Type": "application/json; charset=utf-8", "X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return _Reply(status, headers, json.dumps({"error": message}).encode())


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Return (start, end inclusive) for a single ``bytes=`` range, or None when unsatisfiable."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not m or (not m[1] and not m[2]):
        return None
    if not m[1]:  # suffix range: the last n bytes
        n = int(m[2])
        return (max(size - n, 0), size - 1) if n and size else None
    start = int(m[1])
    end = min(int(m[2]), size - 1) if m[2] else size - 1
    return (start, end) if start < size and start <= end else None


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections are dropped after this

    def setup(self) -> None:
        super().setup()
        with self.hub._lock:
            self.hub._conns.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.hub._lock:
                self.hub._conns.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet; the hub keeps its own log (which never holds the token)

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._serve("POST")

    def _serve(self, method: str) -> None:
        self.hub._begin()
        req = None
        try:
            req = self._answer(method)
        finally:
            self.hub._end(req)  # a reply cut by the client is not logged, as before

    def _answer(self, method: str) -> Request:
        parts = urlsplit(self.path)
        raw_path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        auth, token = self.hub._auth(self.headers.get("Authorization"))
        if method == "POST":
            reply = _error(405, None, "Method not allowed in this fake")
        else:
            reply = self.hub.route(method, raw_path, query, auth, token)
        range_header = self.headers.get("Range")
        fault = self.hub._take_fault(method, reply)
        if fault is not None and fault.status is not None:
            reply = _error(fault.status, None, "Injected failure")

        status, headers, body = reply.status, dict(reply.headers), reply.body
        if reply.ranged and range_header and status == 200:
            span = _parse_range(range_header, len(body))
            if span is None:
                status, body = 416, b""
                headers["Content-Range"] = f"bytes */{len(reply.body)}"
            else:
                status, body = 206, body[span[0] : span[1] + 1]
                headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{len(reply.body)}"

        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = 0
        if method != "HEAD":
            if fault is not None and fault.cut_after is not None:
                chunk = body[: fault.cut_after]
                self.wfile.write(chunk)
                self.wfile.flush()
                sent = len(chunk)
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            else:
                self.wfile.write(body)
                sent = len(body)
        filename = reply.filename
        if filename is None and (m := _RESOLVE.match(raw_path)):
            filename = unquote(m["file"])
        return Request(method, unquote(raw_path), query, range_header, status, sent, auth, filename)
