"""Provenance and safe output: atomic writes, and the record of what produced a result.

Every command writes its files to a temporary name and renames them into place, so an interrupted
run never leaves a half-written file; manifests record package versions, the code version (git
commit) and the machine (STRESS-DES 5.1-5.3).
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from sim import __version__

if TYPE_CHECKING:
    import pandas as pd


def write_atomically(folder: Path, files: dict[str, str | bytes]) -> None:
    """Write every file to a temporary name in `folder`, then rename each into place."""
    folder.mkdir(parents=True, exist_ok=True)
    staged = []
    try:
        for name, text in files.items():
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            staged.append((tmp, folder / name))
        for tmp, final in staged:
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.remove(tmp)


def write_parquet_atomically(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


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
