"""Atomic writes: outputs appear whole or not at all (write to a temporary name, rename).

A temporary is removed when the write fails or is interrupted (KeyboardInterrupt and the CLI's
SIGTERM exception included); one a killed process left is removed by the next write of the
same output (`sslmae.outputs.remove_stale`). A write the disk refuses (full, quota, read-only)
is an OutputError naming the output.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from sslmae.outputs import OutputError, claim_folder, remove_stale, temp_prefix, write_marker

# the disk said no: not the input's fault, and nothing to retry in the same place
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


@contextlib.contextmanager
def _disk_errors(final: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno in DISK_ERRNOS:
            raise OutputError(f"{final}: cannot write the output ({os.strerror(exc.errno)}); "
                              "nothing was left behind") from None
        raise


@contextlib.contextmanager
def atomic_dir(final: str | Path, command: str, legacy: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `final`, on error it is removed.
    `final` may be replaced only when it is new, empty or an earlier output of `command`
    (`sslmae.outputs.claim_folder`); the new folder carries `command`'s marker."""
    final = claim_folder(final, command, legacy)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final.parent, f".{final.name}.tmp-")
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final.name), dir=final.parent))
    try:
        with _disk_errors(final):
            yield tmp
            write_marker(tmp, command)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, 0o755)  # mkdtemp makes an owner-only folder
    old = None
    if final.exists():
        old = final.with_name(f"{temp_prefix(final.name)}old")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(final: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path to write; on success it is synced to disk and renamed
    to `final`, so the name never points at partial or unsynced data."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final.parent, f".{final.name}.tmp-")
    fd, name = tempfile.mkstemp(prefix=temp_prefix(final.name), dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        with _disk_errors(final):
            yield tmp
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; outputs are for everyone to read
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, obj) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
