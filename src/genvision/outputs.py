"""Writes nothing it shouldn't: the one guard every genvision command that writes files goes through.

A command first *plans* its outputs with an :class:`OutputGuard`, before it loads data or runs a
model, so a refusal costs nothing and leaves every file as it was:

* an output is never one of the command's inputs: paths are compared resolved (symlinks
  followed) and by file identity (``st_dev``/``st_ino``, so hard links count too); an output
  (or output folder) equal to or inside an input *folder* is refused for folder jobs;
* an existing output is refused unless ``--overwrite`` (one line naming the file);
* two outputs of one command never share a name; names are compared case-insensitively, so a
  plan that works on Linux also works on macOS and Windows;
* files are written to a hidden temporary file in the target folder and renamed into place
  (``genvision.io`` and ``PNGStreamWriter`` do this), so an interrupted write never leaves a
  half file under the final name.

Folder jobs (``upscale IN/ -o OUT/`` and later edit/denoise/stylize) map input files to output
names with :func:`output_names` and run with :func:`run_job`: a progress bar, one stderr line per
file that fails, ``fail_fast`` to stop at the first, and a :class:`JobReport` whose counts are true.

**The naming rule** (:func:`output_names`). An input keeps its path relative to the input folder
with its suffix replaced by the output suffix (``a/x.jpg`` -> ``a/x.png``). When several inputs
would get the same output name (compared case-insensitively), *each* of them gets its source
suffix added to the stem instead (``x.jpg`` -> ``x_jpg.png``, ``x.png`` -> ``x_png.png``,
``x.tif`` -> ``x_tif.png``). If two names still collide (``x.png`` and ``X.PNG``, or ``x.jpg``
next to a file really called ``x_jpg.png``), the plan is refused with a message naming both inputs.
The rule depends only on the set of input names, so the same folder always gives the same names.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from .checkpoints import resolve_model_dir
from .errors import GenvisionError, display_path
from .io import json_default, write_atomically

__all__ = ["OutputError", "OutputExistsError", "OutputGuard", "NumberedNames", "output_names", "plan_folder_job",
           "PlannedOutput", "JobReport", "run_job", "write_bytes", "write_json", "save_npy", "model_input_files"]

T = TypeVar("T")

OVERWRITE_HINT = "pass --overwrite to replace"


class OutputError(GenvisionError):
    """A planned output would overwrite an input, collide with another output, or is unusable."""


class OutputExistsError(OutputError):
    """A planned output exists and ``overwrite`` was not given."""


def _resolve(path: Path) -> Path:
    # strict=False: the output usually does not exist yet; its existing parents' symlinks are followed
    return Path(os.path.abspath(path)).resolve(strict=False)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _key(path: Path | PurePath) -> str:
    """Names that one of the common file systems would take for one file (case-insensitive ones)."""
    return os.path.normcase(str(path)).casefold()


def sidecar_of(path: Path) -> Path:
    """The JSON sidecar ``genvision.io.write_sidecar`` writes next to ``path``."""
    return path.with_name(path.name + ".json")


def model_input_files(model_dir: str | os.PathLike) -> list[Path]:
    """The files a saved model is loaded from (the resolved model or checkpoint directory's own
    files): outputs must never replace them. Empty for names that are not directories (bicubic)."""
    try:
        directory = resolve_model_dir(model_dir)
    except (GenvisionError, OSError):
        return []  # loading will report the problem in its own words
    try:
        return [p for p in Path(directory).iterdir() if p.is_file()]
    except OSError:
        return []


class NumberedNames(Sequence[str]):
    """``prefix + index + suffix`` for index in ``range(count)``, the index zero-padded to ``width``
    digits, without building the list (``generate -n 100000000 -o out/`` must not)."""

    def __init__(self, prefix: str, count: int, suffix: str, width: int = 5) -> None:
        self.prefix, self.count, self.suffix, self.width = prefix, count, suffix, width
        self._pattern = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(index)
        return f"{self.prefix}{index:0{self.width}d}{self.suffix}"

    def __contains__(self, name: object) -> bool:
        match = self._pattern.fullmatch(name) if isinstance(name, str) else None
        return match is not None and int(match[1]) < self.count and self[int(match[1])] == name


class OutputGuard:
    """Plans the files one command writes, refusing (before anything is written) an output that is
    an input, lies in an input folder, exists without ``overwrite``, or collides with another.

    Example::

        guard = OutputGuard(overwrite=overwrite)
        guard.add_inputs(*images)
        guard.add_inputs(*model_input_files(model_dir))
        out = guard.claim(output, sidecar=True)   # raises OutputError / OutputExistsError
    """

    def __init__(self, *, overwrite: bool = False) -> None:
        self.overwrite = overwrite
        self._input_paths: dict[str, Path] = {}  # resolved path -> the path as given
        self._input_ids: dict[tuple[int, int], Path] = {}  # (st_dev, st_ino) -> the path as given
        self._input_folders: list[tuple[Path, Path]] = []  # (resolved, as given)
        self._claimed: dict[str, tuple[Path, str | None]] = {}  # key -> (output, what it is written from)

    # -- inputs ---------------------------------------------------------------------------------

    def add_inputs(self, *paths: str | os.PathLike) -> OutputGuard:
        """Files the command reads: no output may be any of them (by path or by identity)."""
        for path in paths:
            path = Path(path)
            self._input_paths[str(_resolve(path))] = path
            ident = _identity(path)
            if ident is not None:
                self._input_ids[ident] = path
        return self

    def add_input_folder(self, folder: str | os.PathLike) -> OutputGuard:
        """A folder the command reads as a whole: no output may be in it (or be it)."""
        folder = Path(folder)
        self._input_folders.append((_resolve(folder), folder))
        return self.add_inputs(folder)

    def add_model(self, model_dir: str | os.PathLike | None) -> OutputGuard:
        """The files a saved model is loaded from."""
        return self if model_dir is None else self.add_inputs(*model_input_files(model_dir))

    # -- checks ---------------------------------------------------------------------------------

    def _refuse_input(self, path: Path, what: str = "output") -> None:
        resolved = _resolve(path)
        for folder, given in self._input_folders:
            if _inside(resolved, folder):
                where = "is" if resolved == folder else "is inside"
                raise OutputError(f"refusing to write {display_path(path)}: it {where} the input folder {display_path(given)}; "
                                  f"choose an {what} outside it")
        # exact path here: on case-insensitive file systems the identity check below catches A.png vs a.png
        same = self._input_paths.get(str(resolved))
        if same is None:
            ident = _identity(path)
            same = self._input_ids.get(ident) if ident is not None else None
        if same is not None:
            raise OutputError(f"refusing to write {display_path(path)}: it is the input {display_path(same)}; "
                              f"choose another {what}")

    def claim_folder(self, folder: str | os.PathLike) -> Path:
        """An output folder: not an input folder or inside one, not an existing file."""
        folder = Path(folder)
        self._refuse_input(folder, "output folder")
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{display_path(folder)} exists and is not a folder; give a folder name")
        return folder

    def claim(self, path: str | os.PathLike, *, sidecar: bool = False, source: str | os.PathLike | None = None,
              check_exists: bool = True) -> Path:
        """One output file (and its JSON sidecar with ``sidecar=True``); ``source`` names the input it
        is made from, for collision messages. Returns ``path`` as a Path."""
        path = Path(path)
        self._refuse_input(path)
        if path.is_dir():
            raise OutputError(f"{display_path(path)} is a folder; give a file name (or end -o with / for one file "
                              f"per image where the command supports it)")
        key = _key(_resolve(path))
        if key in self._claimed:
            first, first_source = self._claimed[key]
            if first_source is not None and source is not None:
                raise OutputError(f"{display_path(first_source)} and {display_path(source)} would both be written to "
                                  f"{display_path(path)}; rename one of them")
            raise OutputError(f"{display_path(path)} is named twice as an output; give distinct names")
        if check_exists and not self.overwrite and os.path.lexists(path):
            raise OutputExistsError(f"{display_path(path)} already exists; {OVERWRITE_HINT} it")
        self._claimed[key] = (path, None if source is None else str(source))
        if sidecar:
            self.claim(sidecar_of(path), check_exists=check_exists)
        return path

    def claim_numbered(self, folder: str | os.PathLike, names: Sequence[str], *, sidecar: bool = False) -> Path:
        """Many outputs ``folder/name`` whose names cannot collide among themselves (as
        :class:`NumberedNames` makes): checks the folder once and each name's existence in
        ``O(min(len(names), files in folder))``, without listing the names."""
        folder = self.claim_folder(folder)
        if self.overwrite or not folder.is_dir():
            return folder
        try:
            entries = os.listdir(folder)
        except OSError as exc:
            raise OutputError(f"{display_path(folder)}: cannot list ({exc.strerror or exc})") from exc
        targets = set()
        if len(names) <= len(entries):
            for name in names:
                targets.add(name)
                if sidecar:
                    targets.add(name + ".json")
            clashes = sorted(e for e in entries if e in targets)
        else:
            clashes = sorted(e for e in entries if e in names or (sidecar and e.endswith(".json") and e[:-5] in names))
        if clashes:
            more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
            raise OutputExistsError(f"{display_path(folder / clashes[0])} already exists{more}; {OVERWRITE_HINT} "
                                    f"{'them' if more else 'it'}")
        return folder


# ----------------------------------------------------------------------------- folder jobs


def output_names(relative: Sequence[PurePath | str], suffix: str = ".png") -> list[PurePath]:
    """Output names (relative paths) for input files (relative paths), by the rule in the module
    docstring. Raises OutputError naming both inputs when two names still collide."""
    rel = [PurePath(r) for r in relative]
    natural = [r.with_suffix(suffix) if r.suffix else r.with_name(r.name + suffix) for r in rel]
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(natural):
        groups.setdefault(_key(name), []).append(i)
    names = list(natural)
    for members in groups.values():
        if len(members) > 1:
            for i in members:
                tag = rel[i].suffix[1:]
                names[i] = rel[i].with_name(f"{rel[i].stem}_{tag}{suffix}") if tag else natural[i]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        j = seen.setdefault(_key(name), i)
        if j != i:
            raise OutputError(f"{display_path(rel[j])} and {display_path(rel[i])} would both be written to {display_path(name)} "
                              f"(output names are compared ignoring case); rename one of them")
    return names


@dataclass(frozen=True)
class PlannedOutput:
    source: Path
    output: Path


def plan_folder_job(sources: Sequence[Path], source_root: Path, out_root: Path, *, guard: OutputGuard,
                    suffix: str = ".png", sidecar: bool = False,
                    select: Callable[[list[PlannedOutput]], list[PlannedOutput]] | None = None
                    ) -> list[PlannedOutput]:
    """Pair every file in ``sources`` (all under ``source_root``) with its output under ``out_root``,
    by :func:`output_names`. Refuses an ``out_root`` equal to or inside ``source_root``, an output
    that is an input, collisions, and (without ``guard.overwrite``) existing outputs — all before
    anything is written. The existing-output message counts how many exist. ``select`` keeps part of
    the named plan (a shard, the files not done yet: :mod:`genvision.jobs`) before outputs are checked."""
    guard.add_input_folder(source_root)
    guard.add_inputs(*sources)
    guard.claim_folder(out_root)
    names = output_names([s.relative_to(source_root) for s in sources], suffix)  # over all inputs, always
    plan = [PlannedOutput(s, out_root / n) for s, n in zip(sources, names)]
    if select is not None:
        plan = select(plan)
    if not guard.overwrite:
        existing = [p.output if os.path.lexists(p.output) else sidecar_of(p.output) for p in plan
                    if os.path.lexists(p.output) or (sidecar and os.path.lexists(sidecar_of(p.output)))]
        if existing:
            more = f" (and {len(existing) - 1} more of the {len(plan)} outputs)" if len(existing) > 1 else ""
            raise OutputExistsError(f"{display_path(existing[0])} already exists{more}; {OVERWRITE_HINT} "
                                    f"{'them' if more else 'it'}")
    for p in plan:
        guard.claim(p.output, sidecar=sidecar, source=p.source, check_exists=False)
    return plan


@dataclass
class JobReport:
    """What a folder job did: ``total`` items, the outputs written, ``(item, message)`` per failure."""

    total: int
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self, where: str | os.PathLike | None = None, noun: str = "images") -> str:
        """``wrote 3 images to out/`` or ``wrote 2 of 3 images to out/; 1 failed``."""
        to = f" to {display_path(where)}" if where is not None else ""
        if self.ok and len(self.written) == self.total:
            return f"wrote {self.total} {noun}{to}"
        failed = f"; {len(self.failed)} failed" if self.failed else ""
        return f"wrote {len(self.written)} of {self.total} {noun}{to}{failed}"

    def raise_if_failed(self, where: str | os.PathLike | None = None, noun: str = "images") -> None:
        """For commands: the summary becomes the one ``error:`` line (each failure was already
        reported on its own line) and the exit status is non-zero."""
        if self.failed:
            raise JobFailedError(self.summary(where, noun))


class JobFailedError(GenvisionError):
    """A folder job stopped at its first failure (``fail_fast``)."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_job(items: Iterable[T], work: Callable[[T], Path], *, total: int, label: Callable[[T], str] = str,
            fail_fast: bool = False, progress: bool = True, desc: str = "", unit: str = "img",
            stream=None, on_done: Callable[[T, Path], None] | None = None) -> JobReport:
    """Run ``work(item)`` (which writes one output and returns its path) for each item with a
    progress bar. A :class:`GenvisionError` or MemoryError for one item is reported as one
    ``error: ...`` line on ``stream`` (stderr) and the job goes on; with ``fail_fast`` the job stops
    there with a :class:`JobFailedError`. Other exceptions are bugs and propagate. ``on_done(item,
    path)`` runs after each success (a job's manifest records it)."""
    stream = sys.stderr if stream is None else stream
    report = JobReport(total)
    with tqdm(total=total, desc=desc or None, unit=unit, disable=not progress, dynamic_ncols=True,
              file=sys.stderr) as bar:
        for item in items:
            try:
                report.written.append(work(item))
                if on_done is not None:
                    on_done(item, report.written[-1])
            except (GenvisionError, MemoryError) as exc:
                name = label(item)
                message = _one_line(exc) if not isinstance(exc, MemoryError) else "out of memory"
                line = message if name in message else f"{name}: {message}"
                report.failed.append((name, line))
                if fail_fast:
                    raise JobFailedError(f"{line} (--fail-fast: stopped after writing {len(report.written)} of "
                                         f"{total})") from exc
                bar.write(f"error: {line}", file=stream)
            bar.update(1)
    return report


# ----------------------------------------------------------------------------- atomic writers


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` atomically (temp file in the same folder, fsync, rename)."""
    return write_atomically(path, lambda fh: fh.write(data))


def write_json(path: str | os.PathLike, obj, *, indent: int = 2) -> Path:
    """``obj`` as JSON, atomically; serialising fails before any file is touched."""
    return write_bytes(path, (json.dumps(obj, indent=indent, default=json_default) + "\n").encode("utf-8"))


def save_npy(path: str | os.PathLike, array) -> Path:
    """A NumPy array as .npy (no pickles), atomically."""
    return write_atomically(path, lambda fh: np.save(fh, np.asarray(array), allow_pickle=False))
