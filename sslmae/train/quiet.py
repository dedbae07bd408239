"""Keep Lightning's console output to what a user needs: no advertising, no warnings
about choices we made on purpose."""

from __future__ import annotations

import contextlib
import logging
import warnings

# Lightning warnings that describe our deliberate choices, not problems
EXPECTED_WARNINGS = (
    ".*does not have many workers.*",  # num_workers is a param; 0 is right for tiny data
    ".*overridden `on_after_batch_transfer`.*",  # augmentation lives in the module on purpose
    ".*LeafSpec.*",  # lightning 2.6 vs torch 2.14 deprecation inside lightning itself
    ".*Checkpoint directory .* exists and is not empty.*",  # a resumed or rerun out_dir holds its checkpoints
    ".*smaller than the logging interval.*",  # loggers get one row per epoch (EpochHistory), not per N steps
    # the data module keeps the loader's position (sslmae.train.datamodule): it resumes mid-epoch exactly
    ".*resuming from a checkpoint that ended before the epoch ended.*",
)
# lightning routes rank-zero messages through whichever of these modules was set up last
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                     "lightning_utilities.core.rank_zero")


# Lightning's info lines that tell a user nothing (the "GPU available: ..., used: ..." line stays)
DROPPED_LINES = (
    "Tip:",  # advertising
    "Detected KeyboardInterrupt",  # the CLI reports an interruption in its own one line
    "TPU available", "HPU available",  # accelerators sslmae does not support
    "to estimate number of stepping batches",  # the scheduler's step count: internal bookkeeping
)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(part in message for part in DROPPED_LINES)


@contextlib.contextmanager
def quiet_lightning():
    """Within: Lightning's DROPPED_LINES dropped, the expected warnings ignored."""
    loggers, f = [logging.getLogger(n) for n in RANK_ZERO_LOGGERS], _DropTips()
    for log in loggers:
        log.addFilter(f)
    try:
        with warnings.catch_warnings():
            for pattern in EXPECTED_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for log in loggers:
            log.removeFilter(f)
