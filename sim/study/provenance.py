"""Provenance and safe output: atomic writes, and the record of what produced a result.

Every command writes its files to a temporary name and renames them into place, so an interrupted
run never leaves a half-written file; a write that fails (full disk, no permission, a file where a
folder should be) removes its temporary files and becomes an `InputError` naming the folder and the
reason. Files get the permissions of any file the user creates (the umask), not the private mode
of a temporary file. Manifests record package versions, the code version (git commit) and the
machine (STRESS-DES 5.1-5.3).
"""

from __future__ import annotations

import datetime
import errno
import os
import platform
import subprocess
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from sim import __version__
from sim.scenario.schema import InputError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def write_atomically(folder: Path, files: dict[str, str | bytes]) -> None:
    """Write every file to a temporary name in `folder`, then rename each into place."""
    ensure_folder(folder)
    staged = []
    mode = file_mode()
    try:
        for name, text in files.items():
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            staged.append((tmp, folder / name))
            with os.fdopen(fd, "wb") as handle:
                _write(handle, text.encode("utf-8") if isinstance(text, str) else text)
            os.chmod(tmp, mode)
        for tmp, final in staged:
            os.replace(tmp, final)
    except OSError as exc:
        raise write_error(folder, exc) from None
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.remove(tmp)


def _write(handle, data: bytes) -> None:
    handle.write(data)


def write_parquet_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame as Parquet to a temporary name beside `path`, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _write_frame(frame, tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path.parent, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()


FRAME_SLICE_ROWS = 250_000   # rows of a DataFrame converted to Arrow and written at a time (one row group each)


def _write_frame(frame: pd.DataFrame, where: Path) -> None:
    """frame.to_parquet(where, index=False), a slice of rows at a time: a large study's frame is then never held
    twice (as pandas and as Arrow), which was the largest study's peak memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(frame) <= FRAME_SLICE_ROWS:
        frame.to_parquet(where, index=False)
        return
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    with pq.ParquetWriter(where, schema) as writer:
        for start in range(0, len(frame), FRAME_SLICE_ROWS):
            rows = frame.iloc[start:start + FRAME_SLICE_ROWS]
            writer.write_table(pa.Table.from_pandas(rows, schema=schema, preserve_index=False))


def parquet_bytes(table: pa.Table) -> bytes:
    """A table as the bytes of a Parquet file (what a worker hands back: compressed, and cheap to pass on)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    # Dictionaries pay for text and flags; a float column's values rarely repeat and its dictionary attempt only
    # costs time (half of a chunk's encoding).
    pq.write_table(table, sink, use_dictionary=[field.name for field in table.schema
                                                if not pa.types.is_floating(field.type)])
    return sink.getvalue().to_pybytes()


def file_mode() -> int:
    """Permissions of a new file under the current umask (what open() would give), e.g. 0o644."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def folder_problem(folder: Path) -> str:
    """Why `folder` cannot be an output folder because of what is already on disk ('' if it can)."""
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            what = "exists and is a file" if parent == folder else f"is below {parent}, which is a file"
            return f"{folder}: {what}, not a folder; choose another output folder (--out)"
    return ""


def ensure_folder(folder: Path) -> None:
    """Create the output folder (and its parents), or InputError saying why it cannot be one."""
    if folder_problem(folder):
        raise InputError(folder_problem(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(folder, exc) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{folder}: cannot write in this folder (permission denied); choose another output "
                         "folder (--out)")


def write_error(folder: Path, exc: OSError) -> InputError:
    """An InputError for a failed write: the folder, the reason in words, and what to do."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        advice = "free some space (or choose another --out) and rerun the same command"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "choose another output folder (--out)"
    else:
        advice = "check the folder, or choose another output folder (--out)"
    return InputError(f"{folder}: cannot write there ({reason}); nothing half-written was left: {advice}")


def manifest_text(manifest: dict) -> str:
    """A manifest as strict JSON: numbers that are not finite (a value not evaluable in this run) become null."""
    import json
    import math

    def strict(value: object) -> object:
        if isinstance(value, dict):
            return {key: strict(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [strict(item) for item in value]
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if hasattr(value, "item") and not isinstance(value, str):   # a numpy scalar
            return strict(value.item())
        return value

    return json.dumps(strict(manifest), indent=2, sort_keys=True, default=float, allow_nan=False) + "\n"


NUMERIC_PARTS = ("truths", "base")   # manifest parts whose null values are numbers not evaluable in that run


def read_manifest(out: Path) -> dict:
    """OUT/manifest.json, with the nulls of its numeric parts read back as NaN (manifest_text wrote them)."""
    import json

    def numbers(value: object) -> object:
        if isinstance(value, dict):
            return {key: numbers(item) for key, item in value.items()}
        return float("nan") if value is None else value

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return {key: numbers(value) if key in NUMERIC_PARTS else value for key, value in manifest.items()}


def package_versions() -> dict[str, str]:
    """Versions of Python, this package and the libraries that change numbers."""
    versions = {"python": platform.python_version(), "sim": __version__}
    for name in ("numpy", "scipy", "simpy", "pandas", "pydantic", "pyarrow", "joblib", "distributed"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def code_version() -> str:
    """Git commit of the code (with '+dirty' for uncommitted changes), or the package version."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{commit}{'+dirty' if dirty else ''}" if commit else __version__


def machine() -> dict[str, object]:
    """Where the run happened."""
    return {"node": platform.node(), "system": platform.platform(), "processor": platform.machine(),
            "cpus": os.cpu_count()}


def iso_time(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).isoformat(timespec="seconds")
