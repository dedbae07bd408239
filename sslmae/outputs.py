"""Whose output is this? sslmae replaces or writes into a location only when it is new, empty,
or an earlier output of the same command; anything else is refused before any work, naming
the location and a few of the names in it. A folder an sslmae command made carries a marker
file (`.sslmae.json`: which command); a file is recognised by what the command writes into it.

Temporaries carry the writing process's id (`.NAME.tmp-PID-XXXX`, `sslmae-CMD-PID-XXXX`), so
a later run removes those a killed run (SIGKILL, power loss) left behind, and only those.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

MARKER = ".sslmae.json"


class OutputError(ValueError):
    """An output location that sslmae must not touch, or cannot write; the message names it."""


def marker_command(folder: Path) -> str | None:
    """The command that made `folder`, from its marker; None if there is none."""
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8")).get("command")
    except (OSError, ValueError, AttributeError):
        return None


def write_marker(folder: str | Path, command: str) -> None:
    (Path(folder) / MARKER).write_text(json.dumps({"command": command}) + "\n", encoding="utf-8")


def _names(folder: Path, limit: int = 3) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def claim_folder(folder: str | Path, command: str, legacy: tuple[str, ...] = ()) -> Path:
    """The resolved `folder`, if `command` may write there: it does not exist, is empty, or holds
    `command`'s marker (or, for outputs older than markers, every path in `legacy`).
    Raises OutputError otherwise, nothing touched."""
    folder = Path(folder).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder; sslmae {command} writes a folder there")
    if not folder.exists() or not any(folder.iterdir()):
        return folder
    owner = marker_command(folder)
    if owner == command or (owner is None and legacy and all((folder / p).exists() for p in legacy)):
        return folder
    whose = f"an output of sslmae {owner}" if owner else f"files sslmae {command} did not write"
    raise OutputError(f"{folder}: refusing to write there: it holds {whose} ({_names(folder)}); "
                      "give a new or empty folder")


def claim_file(path: str | Path, command: str, recognise: Callable[[Path], bool]) -> Path:
    """The resolved `path`, if `command` may (over)write it: absent, or a file `recognise` says
    the command wrote. Raises OutputError otherwise."""
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; sslmae {command} writes a file there")
    if path.exists() and not recognise(path):
        raise OutputError(f"{path}: refusing to overwrite a file sslmae {command} did not write; give a new name")
    return path


def check_apart(out: str | Path, source: str | Path, command: str) -> None:
    """Refuse an output that is, lies inside, or contains a local source (before any work)."""
    out, src = Path(out).expanduser().resolve(), Path(source).expanduser().resolve()
    if out == src:
        raise OutputError(f"{out}: the output is the source itself; sslmae {command} would replace it")
    if src in out.parents:
        raise OutputError(f"{out}: the output lies inside the source {src}; give a folder outside it")
    if out in src.parents:
        raise OutputError(f"{out}: the output contains the source {src}; replacing it would delete the source")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _stale(name: str, prefix: str) -> bool:
    """`name` = prefix + PID + '-' + anything, and that PID is gone."""
    pid = name[len(prefix):].split("-", 1)[0]
    return pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid))


def remove_stale(folder: Path, prefix: str) -> None:
    """Remove what dead processes left in `folder` under names starting `prefix` + PID."""
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if p.name.startswith(prefix) and _stale(p.name, prefix):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)


def temp_prefix(name: str) -> str:
    """The temporary sibling prefix of output `name` for this process: `.NAME.tmp-PID-`."""
    return f".{name}.tmp-{os.getpid()}-"


def work_dir(command: str) -> tempfile.TemporaryDirectory:
    """A scratch folder in the system temp dir, `sslmae-CMD-PID-XXXX`, after removing the ones
    earlier, killed runs of `command` left there."""
    remove_stale(Path(tempfile.gettempdir()), f"sslmae-{command}-")
    return tempfile.TemporaryDirectory(prefix=f"sslmae-{command}-{os.getpid()}-")
