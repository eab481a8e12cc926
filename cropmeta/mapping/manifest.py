"""The export's work directory and its manifest of finished blocks (resume after an interruption).

Layout, beside the output: ``.<out name>.cropmeta-export/``
- ``signature.json`` — what the parts were computed from (model, inputs, region, batching); a
  rerun with another signature starts afresh;
- ``done.jsonl`` — one line per finished block, appended with fsync *after* its part file was
  renamed into place, so every listed block has a complete part; a torn last line (SIGKILL while
  appending) is ignored;
- ``parts/<tile>/<row>_<col>.npy`` — the block's float32 probabilities (NaN = nodata), written
  atomically. Read back with ``allow_pickle=False``.
The directory is removed once the map is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from cropmeta._fs import atomic_path, atomic_write_text

MANIFEST_VERSION = 1


def work_dir_for(out: Path) -> Path:
    return out.parent / f".{out.name}.cropmeta-export"


def signature_hash(sig: dict) -> str:
    return hashlib.sha256(json.dumps(sig, sort_keys=True, default=str).encode()).hexdigest()


class Manifest:
    def __init__(self, work: Path, signature: dict):
        self.work = Path(work)
        self.signature = dict(signature, manifest_version=MANIFEST_VERSION)
        self.sig_hash = signature_hash(self.signature)
        self._fh = None
        self.done: set[str] = set()

    # ------------------------------------------------------------------------------------------
    def open(self) -> "Manifest":
        """Create or resume the work directory; returns self with ``done`` filled."""
        sig_file = self.work / "signature.json"
        if self.work.exists():
            old = None
            try:
                old = json.loads(sig_file.read_text()).get("hash")
            except (OSError, ValueError):
                pass
            if old != self.sig_hash:
                shutil.rmtree(self.work)
        if not self.work.exists():
            self.work.mkdir(parents=True)
            atomic_write_text(sig_file, json.dumps({"hash": self.sig_hash, "signature": self.signature},
                                                   indent=2, sort_keys=True, default=str))
        done_file = self.work / "done.jsonl"
        if done_file.exists():
            for line in done_file.read_text().splitlines():
                try:
                    key = json.loads(line)["key"]
                except (ValueError, KeyError, TypeError):
                    continue  # torn line from an interrupted append
                self.done.add(key)
        self._fh = open(done_file, "a")
        return self

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def is_done(self, key: str, part: Path) -> bool:
        return key in self.done and part.exists()

    def record(self, key: str, part: Path, prob: np.ndarray) -> None:
        """Write the part atomically, then append its key (fsync'd)."""
        part.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(part, suffix=".npy.tmp") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.ascontiguousarray(prob, dtype=np.float32), allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
        assert self._fh is not None
        # a torn previous line would swallow this one: start on a fresh line
        self._fh.write("\n" + json.dumps({"key": key}) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.done.add(key)

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.work, ignore_errors=True)


def load_part(part: Path) -> np.ndarray:
    return np.load(part, allow_pickle=False)
