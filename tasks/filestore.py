"""File store for raw messages and attachment contents, outside the database rows.

Two kinds of key:
- content keys: the SHA-256 of the content, file ``<root>/<k[:2]>/<k[2:4]>/<k>``;
  the same content is stored once and a re-write is harmless (attachments);
- pack keys ``pack:<name>:<offset>:<length>``: many small contents written as one
  file, so a sync writes one file per batch instead of one per message (raw
  messages; creating a file costs more here than parsing the message in it).
Files are written beside their target and renamed: a crash never leaves half a file.
Stdlib only: parse workers use it.
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
        if not target.exists():
            self._write(target, content)
        return key

    def put_pack(self, contents: list[bytes]) -> list[str]:
        """Store contents together in one pack file; returns one key per content, in order."""
        if not contents:
            return []
        blob = b"".join(contents)
        name = hashlib.sha256(blob).hexdigest()
        target = self.root / "packs" / name[:2] / name
        if not target.exists():
            self._write(target, blob)
        keys = []
        offset = 0
        for content in contents:
            keys.append(f"pack:{name}:{offset}:{len(content)}")
            offset += len(content)
        return keys

    def get(self, key: str) -> bytes:
        if key.startswith("pack:"):
            _, name, offset, length = key.split(":")
            with open(self.root / "packs" / name[:2] / name, "rb") as handle:
                handle.seek(int(offset))
                return handle.read(int(length))
        return self.path(key).read_bytes()

    def _write(self, target: Path, content: bytes) -> None:
        if target.parent not in self._made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(target.parent)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        partial.write_bytes(content)
        os.replace(partial, target)
