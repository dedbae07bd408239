"""Every knob of the pipeline with its type, range and default: the one copy of the defaults.

params.yaml spells out the same values (tests/test_config.py compares them). Choice lists
are the keys of the registries that act on them, so a new encoder, loss or mode is a valid
value the moment it is registered. Validation is pydantic's (strict types, no extra keys);
`sslmae.config.load` turns its errors into one line naming the key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from sslmae.data.augment import AUTHORS_LABELED, AUTHORS_UNLABELED
from sslmae.data.masks import MASK_COUNTS
from sslmae.datasets.layouts import LAYOUTS
from sslmae.datasets.problems import ON_BAD
from sslmae.hardware import ACCELERATORS, COMPILE, PRECISIONS
from sslmae.model.backbone import ENCODERS
from sslmae.model.head import HEADS
from sslmae.model.losses import CLS_LOSSES, REC_LOSSES, REC_TARGETS
from sslmae.model.modes import MODES
from sslmae.model.optim import DECAY_RULES
from sslmae.model.variants import VARIANTS
from sslmae.split import SUBSET_GROUPS


def one_of(keys) -> Any:
    """A Literal type of a registry's keys."""
    return Literal[tuple(keys)]


def _integral(value: Any) -> Any:
    # JSON/protobuf transports (KFP) send 30 as 30.0; 30.5 stays a float and is refused
    return int(value) if isinstance(value, float) and value.is_integer() else value


Int = Annotated[int, BeforeValidator(_integral)]


def _ordered(pair: list[float]) -> list[float]:
    if pair[0] > pair[1]:
        raise ValueError(f"must be [min, max] with min <= max, got {pair}")
    return pair


def _odd(value: int) -> int:
    if value % 2 != 1:
        raise ValueError(f"must be odd, got {value}")
    return value


Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Range = Annotated[list[Annotated[float, Field(gt=0.0)]], Field(min_length=2, max_length=2), AfterValidator(_ordered)]
UnitRange = Annotated[list[Annotated[float, Field(gt=0.0, le=1.0)]], Field(min_length=2, max_length=2),
                      AfterValidator(_ordered)]


class Section(BaseModel):
    # strict: "3" is not 3 and 1 is not true; ints are accepted where a float is wanted
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_default=False)


class SynthConfig(Section):
    """The embedded default dataset (`sslmae synth`)."""

    out: str = "data/synth"
    n: Int = Field(600, ge=1)
    size: Int = Field(64, ge=16, le=4096)
    seed: Int = 0


class DataConfig(Section):
    """Which dataset the pipeline trains on, and how images are fed to the model."""

    source: str = "data/synth"  # what `sslmae ingest` reads: folder, archive or s3://bucket/prefix
    layout: one_of(["auto", *LAYOUTS]) = "auto"
    on_bad: one_of(ON_BAD) = "error"
    dir: str = "data/dataset"  # the ingested dataset (manifest.parquet + images/) training reads
    split_file: str = "data/split.csv"
    task: one_of(CLS_LOSSES) = "mlc"
    img_size: Int = Field(64, ge=8, le=4096)
    num_workers: Int = Field(0, ge=0)
    # decode once into <cache_dir>/<key>.npy (uint8, rebuilt when a file or img_size changes)
    cache: bool = True
    cache_dir: str = Field("data/cache", min_length=1, pattern=r"\S")
    # semi_supervised: redraw the labeled partners of every batch, or draw one partner per unlabeled
    # image once per run (fixed: the authors' RandomState(seed) upsampling)
    pairing: Literal["redraw", "fixed"] = "redraw"
    drop_last: bool = False  # drop an epoch's last, smaller batch (the authors do)


class StreamConfig(Section):
    """One stream's batch augmentation on the device (sslmae.data.augment.StreamAugment)."""

    crop_scale: UnitRange  # area fraction of the random resized crop
    crop_ratio: Range  # its aspect-ratio range
    hflip: Unit  # probabilities per image
    vflip: Unit
    rot90: bool  # also transpose (p 0.5): with both flips, all 8 turns and mirrors
    jitter: Annotated[list[Annotated[float, Field(ge=0.0)]], Field(min_length=4, max_length=4)]  # b, c, s, hue
    jitter_p: Unit
    grayscale_p: Unit
    blur_p: Unit
    blur_kernel: Annotated[Int, Field(ge=1), AfterValidator(_odd)]
    blur_sigma: Range


def _stream(preset) -> StreamConfig:
    return StreamConfig(**{k: list(v) if isinstance(v, tuple) else v for k, v in vars(preset).items()})


class AugmentConfig(Section):
    """Labeled and unlabeled rows of a batch each get their own augmentation (the authors')."""

    labeled: StreamConfig = _stream(AUTHORS_LABELED)
    unlabeled: StreamConfig = _stream(AUTHORS_UNLABELED)


class SplitConfig(Section):
    """train/val/test and labeled/unlabeled split (`sslmae split`)."""

    fraction: float = Field(0.1, gt=0.0, le=1.0)
    val: float = Field(0.1, ge=0.0, lt=1.0)
    test: float = Field(0.2, ge=0.0, lt=1.0)
    seed: Int = 42


class ModelConfig(Section):
    """The SSL-MAE network: timm ViT encoder, encoder variant, decoder, head."""

    size: one_of(ENCODERS) = "mini"
    encoder: one_of(VARIANTS) = "simmim"  # simmim: the paper; visible_only: MAE-style extension
    decoder_dim: Int = Field(128, ge=8)  # visible_only decoder width
    decoder_depth: Int = Field(2, ge=1)
    patch_size: Int = Field(8, ge=1)
    mask_ratio: float = Field(0.6, ge=0.0, lt=1.0)
    mask_patch_size: Int = Field(16, ge=1)
    mask_count: one_of(MASK_COUNTS) = "ceil"  # masked cells: ceil(ratio * cells) (the authors) or round
    rec_loss: one_of(REC_LOSSES) = "l1"
    rec_target: one_of(REC_TARGETS) = "raw"  # raw: the augmented [0, 1] pixels; normalized: the encoder input
    head: one_of(HEADS) = "linear"  # linear: the paper's FC; mlp: the authors' code
    drop_path: float = Field(0.1, ge=0.0, lt=1.0)
    pretrained: Optional[str] = None  # local weights file; None = random init


class LossConfig(Section):
    """Joint objective L = (1 - w) * L_rec + w * L_cls and the training mode."""

    mode: one_of(MODES) = "semi_supervised"
    w: float = Field(0.5, ge=0.0, le=1.0)
    learn_w: bool = False  # w = sigmoid(theta), theta initialised so that w starts at `w`
    w_lr: float = Field(1e-2, gt=0.0)
    baseline_mask: bool = True  # supervised_baseline masks its input and pools visible tokens (the authors)


class TrainConfig(Section):
    """Optimisation, hardware and fault tolerance."""

    out_dir: str = "runs/train"
    epochs: Int = Field(30, ge=1)
    batch_size: Int = Field(32, ge=1)  # labeled images per step (+ as many unlabeled)
    lr: float = Field(5e-4, gt=0.0)
    weight_decay: float = Field(0.05, ge=0.0)
    weight_decay_on: one_of(DECAY_RULES) = "weights"  # weights: matrices only; all: every parameter
    betas: Annotated[list[Annotated[float, Field(ge=0.0, lt=1.0)]], Field(min_length=2, max_length=2)] = [0.9, 0.999]
    warmup_epochs: float = Field(2.0, ge=0.0)
    min_lr_ratio: float = Field(0.01, ge=0.0, le=1.0)
    accelerator: one_of(ACCELERATORS) = "auto"
    devices: Int = Field(1, ge=1)  # GPUs (or CPU processes) per node; > 1 means DDP
    num_nodes: Int = Field(1, ge=1)  # multi-node: torchrun-style env (MASTER_ADDR, RANK, ...)
    strategy: Literal["auto", "ddp"] = "auto"
    precision: one_of(PRECISIONS) = "auto"
    progress_bar: bool = True
    deterministic: bool = True
    compile: one_of(COMPILE) = "auto"
    checkpoint_every: Int = Field(1, ge=1)  # resumable checkpoint every N epochs (and after the last)
    val_every: Int = Field(1, ge=1)  # validate (and select the best weights) every N epochs
    select: Literal["best", "last"] = "best"  # model.pt: the best validated epoch, or the last one
    early_stop_patience: Int = Field(0, ge=0)  # stop after N validations without a lower val_loss; 0: off
    min_epochs: Int = Field(1, ge=1)  # early stopping never stops before this
    # auto: continue from out_dir/checkpoints/last.ckpt when made with the same params, else start
    # over; strict: refuse a checkpoint made with other params; never: always start over
    resume: Literal["auto", "strict", "never"] = "auto"


class EvalConfig(Section):
    """`sslmae evaluate`."""

    split: one_of(SUBSET_GROUPS) = "test"
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    batch_size: Int = Field(128, ge=1)
    out_dir: str = "runs/eval"


class GridConfig(Section):
    """SSL-MAE-GS: one trial per fixed w, plus the learnable-w trial (SSL-MAE-w_l)."""

    ws: list[Annotated[float, Field(ge=0.0, le=1.0)]] = [0.3, 0.7]
    learnable: bool = True
    out_dir: str = "runs/grid"  # one folder per trial
    selected_dir: str = "runs/selected"  # trials.csv, selected.json and the winner's model.pt


class TrackingConfig(Section):
    """MLflow tracking and model registry."""

    enabled: bool = True
    uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working folder
    experiment: str = "sslmae"
    registered_model: str = "sslmae"
    promote_margin: float = Field(0.0, ge=0.0)  # champion moves only if challenger beats it by this


class Config(Section):
    seed: Int = 42
    synth: SynthConfig = SynthConfig()
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvalConfig = EvalConfig()
    grid: GridConfig = GridConfig()
    tracking: TrackingConfig = TrackingConfig()
