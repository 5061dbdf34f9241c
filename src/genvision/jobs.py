"""Folder jobs split over processes or GPUs, and resumed after a kill.

``--shard I/N`` (or, under ``torchrun``, the process's ``RANK`` of ``WORLD_SIZE``) makes a folder job take
every N-th file of the job's plan, starting at file I: the plan (sorted inputs, output names by
:func:`genvision.outputs.output_names` over *all* inputs) is the same in every process, so the shards
are disjoint, cover the folder, and write exactly the files one process would.

Every finished output is recorded in a manifest inside the output folder
(``OUT/.genvision-job/done-I-of-N.jsonl``, one JSON line per file, appended after the output and its
sidecar were renamed into place). ``--resume`` skips the files any manifest there records (whatever
shard count wrote it) and rewrites the job's other outputs, which a kill may have left without their
sidecar; without ``--resume`` an existing output is refused as always.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, display_path

MANIFEST_DIR = ".genvision-job"  # hidden: folder scans skip it, so an output folder can be an input later
_SHARD = re.compile(r"(\d+)/(\d+)")


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"--shard {self.index}/{self.count}: the index must be in 0..{max(self.count - 1, 0)}")

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        """``I/N`` as given; None means this process's torchrun rank (or the whole job)."""
        if text is None:
            return cls.from_environment()
        match = _SHARD.fullmatch(text.strip())
        if match is None:
            raise ConfigError(f"--shard takes I/N (this process's share, 0 <= I < N), got {text!r}")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def from_environment(cls) -> Shard:
        """This process's rank of the world size when torchrun started it, else the whole job. RANK and
        WORLD_SIZE alone are not enough: some schedulers set them for every process of a job."""
        if "TORCHELASTIC_RUN_ID" not in os.environ:
            return cls()
        try:
            return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
        except ValueError:
            raise ConfigError("RANK and WORLD_SIZE must be numbers (set by torchrun)") from None

    def take(self, items: Sequence) -> list:
        """Every count-th item from index on: round robin, so shards get similar mixes of file sizes."""
        return list(items[self.index::self.count])


class Manifest:
    """What a folder job has finished, kept in its output folder."""

    def __init__(self, out_root: Path, shard: Shard):
        self.folder = Path(out_root) / MANIFEST_DIR
        self.path = self.folder / f"done-{shard.index}-of-{shard.count}.jsonl"
        self.out_root = Path(out_root)

    def exists(self) -> bool:
        return self.folder.is_dir()

    def done(self) -> set[str]:
        """Output names (relative to the output folder) any shard recorded and that are still there."""
        names = set()
        for path in sorted(self.folder.glob("done-*.jsonl")) if self.exists() else []:
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    name = json.loads(line)["output"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a kill: that file is simply redone
                if isinstance(name, str) and (self.out_root / name).is_file():
                    names.add(name)
        return names

    def record(self, source: Path, output: Path) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"source": str(source), "output": output.relative_to(self.out_root).as_posix()})
        with open(self.path, "a", encoding="utf-8") as f:  # one short append per file: O_APPEND keeps it whole
            f.write(line + "\n")


class FolderJob:
    """One process's part of a folder job writing into ``out_root``: its shard (default: this torchrun
    rank's, or all), minus what the manifest records when resuming."""

    def __init__(self, out_root: Path, shard: Shard | None = None, resume: bool = False):
        self.out_root = Path(out_root)
        self.shard = shard or Shard.from_environment()
        self.manifest = Manifest(self.out_root, self.shard)
        self.resuming = resume and self.manifest.exists()
        self.done = self.manifest.done() if self.resuming else set()

    def overwrite(self, asked: bool) -> bool:
        """A resumed job rewrites its own outputs a kill left unrecorded (perhaps without their sidecar)."""
        return asked or self.resuming

    def select(self, plan: Sequence) -> list:
        """This shard's planned outputs (``.source``/``.output`` items) that are not done yet."""
        return [p for p in self.shard.take(plan) if p.output.relative_to(self.out_root).as_posix() not in self.done]

    def record(self, planned, path: Path) -> None:
        self.manifest.record(planned.source, path)

    def announce(self, progress: bool) -> None:
        if self.done and progress:
            print(f"resuming: {len(self.done)} file(s) already done in {display_path(self.out_root)}",
                  file=sys.stderr)


__all__ = ["MANIFEST_DIR", "FolderJob", "Manifest", "Shard"]
