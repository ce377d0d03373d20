"""The local target's revision ledger: one JSON file per revision in the deployment's state dir."""

from __future__ import annotations

import json
import os
from pathlib import Path

from runtime.domain.revisions import Revision
from runtime.host.home import writable


class FileLedger:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def all(self) -> list[Revision]:
        if not self.directory.exists():
            return []
        revs = [Revision.from_dict(json.loads(p.read_text())) for p in self.directory.glob("r*.json")]
        return sorted(revs, key=lambda r: r.number)

    def get(self, number: int) -> Revision | None:
        path = self.directory / f"r{number:05d}.json"
        return Revision.from_dict(json.loads(path.read_text())) if path.exists() else None

    def put(self, revision: Revision) -> None:
        path = self.directory / f"r{revision.number:05d}.json"
        tmp = path.with_suffix(".tmp")
        with writable(tmp):
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(revision.as_dict(), indent=2, sort_keys=True, default=str))
        os.replace(tmp, path)
