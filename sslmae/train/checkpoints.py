"""Lightning checkpoints of a run, in <out_dir>/checkpoints/:

    last.ckpt   the resumable state (weights, optimiser, scheduler, loops, callbacks' state,
                sslmae's config and RNG) every train.checkpoint_every epochs and after the last
    best.ckpt   the weights of the best validated epoch (by the task's primary metric)

Both are Lightning's ModelCheckpoint; every file is written through `AtomicCheckpointIO`
(temporary name, fsync, rename), so a kill never leaves half a checkpoint under its name.
They hold tensors and primitives only and load with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from sslmae.outputs import remove_stale, temp_prefix
from sslmae.train.model_file import CheckpointError, read_weights_only

CHECKPOINT_DIR = "checkpoints"
LAST, BEST = "last", "best"


def last_checkpoint(out_dir: str | Path) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR / f"{LAST}.ckpt"


def best_checkpoint(out_dir: str | Path) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR / f"{BEST}.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary sibling, fsync, then rename onto the checkpoint's name."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path.parent, f".{path.name}.tmp-")  # what a killed run left
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


class LastCheckpoint(ModelCheckpoint):
    """ModelCheckpoint of the resumable state every N epochs, or every N training steps (then also
    at every epoch's end), and after the final epoch (which N need not divide), be it the last
    planned or the one early stopping ends on: a finished run always leaves its final state."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        epoch = trainer.current_epoch + 1
        final = epoch == trainer.max_epochs or trainer.should_stop
        if self._every_n_train_steps or (final and epoch % (self._every_n_epochs or 1)):
            trainer.save_checkpoint(Path(self.dirpath) / f"{LAST}.ckpt", weights_only=False)


class LoaderPosition(Callback):
    """Keeps the training loader (`sslmae.loading.loaders.ResumableLoader`) in step with the loop:
    its sampler's epoch at each epoch's start (Lightning sets the epoch of a loader's sampler, not of
    its batch sampler, where sslmae's order lives), and how many batches of the epoch the loop has
    finished, which a checkpoint records (Lightning runs the checkpoint callbacks after this one)."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        loader = getattr(trainer.datamodule, "train_loader", None)
        if loader is not None:
            loader.batch_sampler.set_epoch(trainer.current_epoch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loader = getattr(trainer.datamodule, "train_loader", None)
        if loader is not None:
            loader.consumed = batch_idx + 1


def checkpoint_callbacks(out_dir: str | Path, every_n_epochs: int, monitor: str,
                         every_n_steps: int = 0) -> tuple[ModelCheckpoint, ModelCheckpoint]:
    """(last, best): the resumable state every `every_n_epochs` epochs (saved at the end of the
    training epoch, after its validation) or, when `every_n_steps`, every that many training steps
    (a mid-epoch checkpoint: the loader's position is in it) and at every epoch's end; and the
    weights of the best epoch by `monitor`."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    every = {"every_n_train_steps": every_n_steps} if every_n_steps else {"every_n_epochs": every_n_epochs}
    last = LastCheckpoint(dirpath=folder, filename=LAST, monitor=None, save_top_k=1, save_on_train_epoch_end=True,
                          enable_version_counter=False, **every)
    best = ModelCheckpoint(dirpath=folder, filename=BEST, monitor=monitor, mode="max", save_top_k=1,
                           save_weights_only=True, save_on_train_epoch_end=False, enable_version_counter=False,
                           auto_insert_metric_name=False)
    return last, best


def best_weights(path: str | Path, prefix: str = "model.") -> tuple[int, dict[str, torch.Tensor]]:
    """(epoch, state dict of the LightningModule's `model`) from a checkpoint file; a damaged or
    foreign file is one CheckpointError naming it."""
    way_out = "; delete the run's out_dir (or train.resume=never) to train again"
    ckpt = read_weights_only(path, "best-weights checkpoint", way_out)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict) or "epoch" not in ckpt:
        raise CheckpointError(f"{path}: not a Lightning checkpoint of sslmae (no epoch and state_dict){way_out}")
    return ckpt["epoch"], {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
