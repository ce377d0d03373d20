"""Where a local deployment keeps its state, and where the shared model cache lives.

$DYNADEPLOY_HOME (default ~/.dynadeploy; runtime/host/home.py)
├── models/                      content-addressed model cache, shared by all deployments
└── deployments/<name>/
    ├── supervisord.conf         the process manager's config (programs/ holds one file per program)
    ├── programs/*.conf
    ├── run/                     supervisord pid file and control socket
    ├── logs/                    one log per program
    ├── kv/                      Dynamo's file discovery store (DYN_FILE_KV)
    ├── etcd/, nats/             data dirs when the spec asks for etcd+NATS discovery
    ├── ports.json               ports picked once and reused, so the endpoint survives redeploys
    └── revisions/               the ledger: one JSON file per revision
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runtime.host.home import home, writable
from runtime.render.local_plan import IDENTITY_ENV  # noqa: F401 - re-exported: carries .identity into processes


@dataclass(frozen=True)
class DeploymentPaths:
    root: Path
    name: str

    @classmethod
    def for_deployment(cls, name: str, state_dir: str | None = None) -> DeploymentPaths:
        return cls(root=home(state_dir) / "deployments" / name, name=name)

    @property
    def identity(self) -> str:
        """An id unique to this deployment in this state dir for this host user.

        Every process of the deployment carries it in its environment (IDENTITY_ENV), and teardown,
        status and the supervisor act only on processes that carry it: the deployment's name alone
        is shared by every home on the host (two users deploying the README's example), a PID alone
        can be reused. Derived, not stored, so it survives a deleted state dir and needs no write.
        """
        return hashlib.sha256(f"{os.getuid()}\0{self.root.resolve()}".encode()).hexdigest()[:20]

    @property
    def model_cache(self) -> Path:
        return self.root.parent.parent / "models"

    @property
    def supervisord_conf(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def programs(self) -> Path:
        return self.root / "programs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def pidfile(self) -> Path:
        return self.run / "supervisord.pid"

    @property
    def socket(self) -> Path:
        # AF_UNIX paths are limited to 107 bytes; deep state dirs fall back to a short, stable
        # path in the temp dir derived from the state dir.
        sock = self.run / "supervisor.sock"
        if len(str(sock)) < 100:
            return sock
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"dynadeploy-{digest}.sock"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def kv(self) -> Path:
        return self.root / "kv"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def nats_data(self) -> Path:
        return self.root / "nats"

    @property
    def ports_file(self) -> Path:
        return self.root / "ports.json"

    @property
    def revisions(self) -> Path:
        return self.root / "revisions"

    def make(self) -> None:
        for d in (self.root, self.programs, self.run, self.logs, self.kv, self.revisions, self.model_cache):
            with writable(d):
                d.mkdir(parents=True, exist_ok=True)
