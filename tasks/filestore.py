"""Content-addressed file store for raw messages and attachment contents.

Files live under ``<root>/<k[:2]>/<k[2:4]>/<k>`` where ``k`` is the SHA-256 of
the content, so the same content is stored once and a re-write is harmless.
Stdlib only: parse workers import it in fresh processes.
"""

import hashlib
import os
from pathlib import Path


class FileStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._made: set[Path] = set()  # directories known to exist: no mkdir per file

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key[2:4] / key

    def put(self, content: bytes) -> str:
        """Store content and return its key (its SHA-256 in hex)."""
        key = hashlib.sha256(content).hexdigest()
        target = self.path(key)
        if target.exists():
            return key
        if target.parent not in self._made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(target.parent)
        # Write beside the target, then rename: a crash never leaves half a file under a key.
        partial = target.with_name(f"{key}.{os.getpid()}.partial")
        partial.write_bytes(content)
        os.replace(partial, target)
        return key

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()
