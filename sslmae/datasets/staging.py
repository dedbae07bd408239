"""Staging: whatever a source writes appears whole or not at all. Content is written into a
hidden `.NAME.partial-XXXX` folder of `workdir`, renamed to `NAME-XXXX` only once complete."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def safe_name(text: str) -> str:
    """A folder-name-safe version of `text` (the archive stem, the last prefix part)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "dataset"


def staged(workdir: Path, name: str, fill: Callable[[Path], None]) -> Path:
    """Run `fill(tmp)` on a hidden temporary folder of `workdir`; return it renamed to `NAME-XXXX`.

    If `fill` raises (or is interrupted), the temporary folder is removed, so no
    half-written dataset is ever visible under its final name.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = f".{name}.partial-"
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=workdir))
    try:
        fill(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final = workdir / f"{name}-{tmp.name[len(prefix):]}"
    os.rename(tmp, final)  # same filesystem: atomic
    return final
