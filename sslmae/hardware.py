"""Where a run trains: device, numeric precision and whether the step is compiled, each a
registry keyed by its params value (train.accelerator, train.precision, train.compile)."""

from __future__ import annotations

from typing import Callable

import torch

ACCELERATORS: dict[str, Callable[[], str]] = {
    "auto": lambda: "gpu" if torch.cuda.is_available() else "cpu",
    "cpu": lambda: "cpu",
    "gpu": lambda: "gpu",
    "cuda": lambda: "gpu",
}
# Lightning's precision names; auto: bf16 autocast on GPU, full fp32 on CPU
PRECISIONS: dict[str, Callable[[str], str]] = {
    "auto": lambda accelerator: {"gpu": "bf16-mixed", "cpu": "32-true"}[accelerator],
    "32": lambda accelerator: "32-true",
    "bf16-mixed": lambda accelerator: "bf16-mixed",
    "16-mixed": lambda accelerator: "16-mixed",
}
# torch.compile the training step? auto: on GPU only (on a CPU compiling costs more than it saves)
COMPILE: dict[str, Callable[[str], bool]] = {
    "auto": lambda accelerator: accelerator == "gpu",
    "on": lambda accelerator: True,
    "off": lambda accelerator: False,
}


def resolve_hardware(accelerator: str, precision: str) -> tuple[str, str]:
    """(train.accelerator, train.precision) -> Lightning's (accelerator, precision)."""
    device = ACCELERATORS[accelerator]()
    return device, PRECISIONS[precision](device)
