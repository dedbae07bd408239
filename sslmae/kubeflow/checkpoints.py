"""Trial checkpoints that outlive the pod: a retried trial resumes instead of starting over.

A KFP retry is a new pod with a new, empty output folder, so the `checkpoints/` Lightning wrote
in the old pod are gone. While a trial trains, `mirrored` copies each new `last.ckpt` (and
`best.ckpt`, which the resumed run still needs) to the run's store under
`runs/<run>/trials/<trial>/`; before training, `restore` puts them back into the new output
folder, and `train` resumes from them (train.resume=auto: only under the same params).
The select step removes `runs/<run>/` once every trial has finished.

Each copy is taken from a hard link to the finished file (Lightning writes checkpoints under a
temporary name and renames them), so a checkpoint replaced during an upload is never torn.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from sslmae.datasets.store import Store
from sslmae.train.checkpoints import BEST, CHECKPOINT_DIR, LAST

FILES = (f"{BEST}.ckpt", f"{LAST}.ckpt")  # best first: a restored last.ckpt may point at it
UPLOAD_EVERY_S = 5.0  # seconds between upload rounds; $SSLMAE_CHECKPOINT_UPLOAD_EVERY_S overrides


def safe_key(text: str) -> str:
    """A store-path-safe form of a run id or trial name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "none"


def run_area(store: Store, run_id: str) -> Store:
    """Everything one pipeline run keeps in the store."""
    return store.child("runs", safe_key(run_id))


class TrialCheckpoints:
    def __init__(self, store: Store, run_id: str, trial: str, log=print):
        self.remote = run_area(store, run_id).child("trials", safe_key(trial))
        self.log = log

    def restore(self, out_dir: str | Path) -> bool:
        """Put the stored checkpoints into `out_dir/checkpoints/`; whether there were any."""
        with tempfile.TemporaryDirectory(prefix="sslmae-restore-") as tmp:
            got = [name for name in FILES if self.remote.get(name, Path(tmp) / name)]
            if f"{LAST}.ckpt" not in got:
                return False  # nothing written: train() sees the output folder as it was
            folder = Path(out_dir) / CHECKPOINT_DIR
            folder.mkdir(parents=True, exist_ok=True)
            for name in got:
                shutil.move(str(Path(tmp) / name), folder / name)
        self.log(f"resuming from the stored checkpoint {self.remote.uri}/{LAST}.ckpt")
        return True

    def sync(self, out_dir: str | Path, seen: dict) -> None:
        """Upload each checkpoint file that changed since `seen` (name -> (inode, mtime))."""
        folder = Path(out_dir) / CHECKPOINT_DIR
        for name in FILES:
            path = folder / name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if seen.get(name) == stamp:
                continue
            snap = folder / f".{name}.upload-{os.getpid()}-{threading.get_ident()}"
            try:
                os.link(path, snap)  # pins this version of the file while it uploads
            except FileNotFoundError:
                continue  # replaced between stat and link: the next round takes the new one
            try:
                self.remote.put(snap, name)
            finally:
                snap.unlink(missing_ok=True)
            seen[name] = stamp

    @contextlib.contextmanager
    def mirrored(self, out_dir: str | Path, every_s: float | None = None) -> Iterator[None]:
        """Upload new checkpoints every `every_s` seconds while the block runs, and once at the end."""
        every_s = every_s if every_s is not None else float(
            os.environ.get("SSLMAE_CHECKPOINT_UPLOAD_EVERY_S", UPLOAD_EVERY_S))
        seen: dict = {}
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every_s):
                try:
                    self.sync(out_dir, seen)
                except Exception as exc:  # a store hiccup must not stop training; the next round retries
                    self.log(f"checkpoint upload to {self.remote.uri} failed, retrying: {exc}")

        thread = threading.Thread(target=loop, name="checkpoint-mirror", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        self.sync(out_dir, seen)  # the final state (only after a successful block)
