"""Every knob of the pipeline with its type, range and default: the one copy of the defaults.

params.yaml spells out the same values (tests/unit/test_config.py compares them). Choice lists
are the keys of the registries that act on them, so a new variant, loss or mode is a valid
value the moment it is registered. Validation is pydantic's (strict types, no extra keys);
`sslmae.config.load` turns its errors into one line naming the key.

A knob marked `free` (`free_field`) does not change the weights and metrics a training run
produces: it says where outputs go, how fast they are made, how they are logged, or what happens
after training (the registry). A training run resumes across a change of it, and DVC's trial
stages need not list it; every other knob they read they must (`free_keys` reads the marks; tests/unit/test_dvc.py
holds dvc.yaml to them).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, Field, StrictInt

from sslmae.augment.streams import AUTHORS_LABELED, AUTHORS_UNLABELED, StreamAugment
from sslmae.datasets.layouts import LAYOUTS
from sslmae.datasets.problems import ON_BAD
from sslmae.hardware import ACCELERATORS, COMPILE, PRECISIONS
from sslmae.knobs import Int, Section
from sslmae.model.backbone import BACKBONES
from sslmae.model.head import HEADS
from sslmae.model.losses import CLS_LOSSES, REC_LOSSES, REC_TARGETS
from sslmae.model.masks import MASK_COUNTS
from sslmae.model.modes import MODES
from sslmae.model.optim import DECAY_RULES
from sslmae.model.variants import VARIANTS
from sslmae.split import SUBSET_GROUPS

FREE = {"free": True}


def one_of(keys) -> Any:
    """A Literal type of a registry's keys."""
    return Literal[tuple(keys)]


def free_field(default: Any, **kw) -> Any:
    """A knob that does not change what training produces (see the module's docstring)."""
    return Field(default, json_schema_extra=FREE, **kw)


# grid.trials: w<fixed w in [0, 1]> (SSL-MAE-GS), learned (SSL-MAE-w_l), baseline (a mode without w)
# The default names a trial for every mode; a mode runs the listed ones it can (sslmae.grid.trial_names),
# so changing the mode alone needs no other setting, and DVC's foreach still sees one fixed list.
DEFAULT_TRIALS = ["w0.3", "w0.7", "learned", "baseline"]
TRIAL = re.compile(r"^(w(0(\.\d+)?|1(\.0*)?)|learned|baseline)$")


def _trials(names: list[str]) -> list[str]:
    bad = [n for n in names if not TRIAL.match(n)]
    if bad:
        raise ValueError(f"trial names are w<w in [0, 1]> (e.g. w0.3), learned or baseline; got {bad}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"trial {twice[0]!r} listed twice")
    return names


class SynthConfig(Section):
    """The embedded default dataset (`sslmae synth`)."""

    out: str = "data/synth"
    n: Int = Field(600, ge=1)
    unlabeled: Int = Field(600, ge=0)  # scenes without labels, in <out>/unlabeled/: the pool (0: none)
    size: Int = Field(64, ge=16, le=4096)
    seed: Int = 0
    bands: Literal[3, 12] = 3  # 3: RGB PNG scenes; 12: Sentinel-2-like 16-bit GeoTIFFs (two infrared-only labels)


class DataConfig(Section):
    """Which dataset the pipeline trains on, and how images are fed to the model."""

    source: str = "data/synth"  # what `sslmae ingest` reads: folder, archive or s3://bucket/prefix
    # archives of images nobody labeled, ingested beside `source` as the pool the method learns from:
    # folders, archives or s3:// prefixes of images (ids, the file stems, unique across every source)
    unlabeled: list[str] = []
    # a table row (manifest layout) with no labels cell: error (a typo never drops an image's labels),
    # or pool (that image joins the unlabeled pool)
    unlabeled_rows: Literal["error", "pool"] = "error"
    layout: one_of(["auto", *LAYOUTS]) = "auto"
    # the bands the model sees (sslmae.datasets.band_plan): auto follows the data (8-bit RGB sources:
    # rgb; other GeoTIFFs: all), rgb, all, or a list of band names / 1-based indices in model order
    bands: Union[Literal["auto", "rgb", "all"], Annotated[list[Union[StrictInt, str]], Field(min_length=1)]] = "auto"
    on_bad: one_of(ON_BAD) = "error"
    format: Literal["files", "shards"] = "files"  # what ingest writes: images/ files, or tar shards (scale)
    shard_bytes: Int = Field(64 * 2**20, ge=2**16)  # shards: about this many bytes each
    dir: str = "data/dataset"  # the ingested dataset training reads: a folder, or s3://... (shards)
    split_file: str = "data/split.csv"
    task: one_of(CLS_LOSSES) = "mlc"
    img_size: Int = Field(64, ge=8, le=4096)
    num_workers: Int = free_field(0, ge=0)
    # auto: stream a shard dataset, read a folder's files; stream: shard by shard, each shard read
    # once per epoch (a remote dataset through a cache of whole shards); files: any image, any order
    loading: Literal["auto", "files", "stream"] = "auto"
    stream_cache_bytes: Int = free_field(8 * 2**30, ge=1)  # local cache of a remote dataset's shards
    # a dataset's band statistics: from all training images up to this many, else a seeded sample (whole
    # shards of a shard dataset) of about this many (sslmae.loading.band_stats)
    band_stats_images: Int = Field(10_000, ge=1)
    # decode once into <cache_dir>/<key>.npy (uint8, rebuilt when a file or img_size changes)
    cache: bool = free_field(True)
    cache_dir: str = free_field("data/cache", min_length=1, pattern=r"\S")
    # semi_supervised: redraw the labeled partners of every batch, or draw one partner per unlabeled
    # image once per run (fixed: the authors' RandomState(seed) upsampling)
    pairing: Literal["redraw", "fixed"] = "redraw"
    drop_last: bool = False  # drop an epoch's last, smaller batch (the authors do)


class AugmentConfig(Section):
    """Labeled and unlabeled rows of a batch each get their own augmentation (the authors')."""

    labeled: StreamAugment = AUTHORS_LABELED
    unlabeled: StreamAugment = AUTHORS_UNLABELED


class SplitConfig(Section):
    """train/val/test and labeled/unlabeled split (`sslmae split`)."""

    # labeled share of train's labeled images; null: 1 when the data has an unlabeled pool (every labeled
    # training image used as labeled), else 0.1 (the paper's protocol: hide the labels of the rest)
    fraction: float | None = Field(None, gt=0.0, le=1.0)
    val: float = Field(0.1, ge=0.0, lt=1.0)
    test: float = Field(0.2, ge=0.0, lt=1.0)
    seed: Int = 42
    # an existing split table is carried forward: its images keep their train/val/test side and only
    # new images are stratified (a frozen test set across retrainings); false: split from scratch
    frozen: bool = True


class ModelConfig(Section):
    """The SSL-MAE network: timm ViT backbone, encoder variant, decoder, head."""

    backbone: one_of(BACKBONES) = "mini"
    variant: one_of(VARIANTS) = "simmim"  # simmim: the paper; visible_only: MAE-style extension
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
    # where the encoder starts: a local file, timm[:ARCH.TAG], hf-hub:ORG/NAME[@REV][/FILE], s3://, https://,
    # rs:NAME, torchgeo:NAME (sslmae.model.weights_sources); None = random init
    pretrained: Optional[str] = None
    # weights of other bands than the data's (torchgeo:): false stops with both lists; true takes each of
    # the data's bands' kernel from the weights' band of that name, the mean kernel where they have none
    adapt_bands: bool = False
    # the encoder's input normalisation, one value per band (3 for RGB); None: the weights' own
    # statistics when model.pretrained states them (timm, a timm Hub repo, rs:NAME), else ImageNet's
    # (RGB) or the training images' (a dataset with bands)
    pixel_mean: Optional[Annotated[list[float], Field(min_length=1)]] = None
    pixel_std: Optional[Annotated[list[Annotated[float, Field(gt=0.0)]], Field(min_length=1)]] = None


class LossConfig(Section):
    """Joint objective L = (1 - w) * L_rec + w * L_cls and the training mode."""

    mode: one_of(MODES) = "semi_supervised"
    w: float = Field(0.5, ge=0.0, le=1.0)
    learn_w: bool = False  # w = sigmoid(theta), theta initialised so that w starts at `w`
    w_lr: float = Field(1e-2, gt=0.0)
    baseline_mask: bool = True  # supervised_baseline masks its input and pools visible tokens (the authors)
    # L_rec's weight of each band (a dataset's bands, in the model's order); None: equal
    band_weights: Optional[Annotated[list[Annotated[float, Field(ge=0.0)]], Field(min_length=1)]] = None


class TrainConfig(Section):
    """Optimisation, hardware and fault tolerance."""

    out_dir: str = free_field("runs/train")
    epochs: Int = Field(30, ge=1)
    batch_size: Int = Field(32, ge=1)  # labeled images per step (+ unlabeled_ratio x as many unlabeled)
    unlabeled_ratio: Int = Field(1, ge=1)  # mu: unlabeled images per labeled one in a step (1: the authors')
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
    progress_bar: bool = free_field(True)
    deterministic: bool = True
    compile: one_of(COMPILE) = free_field("auto")
    checkpoint_every: Int = free_field(1, ge=1)  # resumable checkpoint every N epochs (and after the last)
    # > 0: every N training steps instead (mid-epoch: the loader's position is in it), and at epoch ends
    checkpoint_every_steps: Int = free_field(0, ge=0)
    val_every: Int = Field(1, ge=1)  # validate (and select the best weights) every N epochs
    select: Literal["best", "last"] = "best"  # model.pt: the best validated epoch, or the last one
    early_stop_patience: Int = Field(0, ge=0)  # stop after N validations without a lower val_loss; 0: off
    min_epochs: Int = Field(1, ge=1)  # early stopping never stops before this
    # auto: continue from out_dir/checkpoints/last.ckpt when made with the same params, else start
    # over; strict: refuse a checkpoint made with other params; never: always start over
    resume: Literal["auto", "strict", "never"] = free_field("auto")


class EvalConfig(Section):
    """`sslmae evaluate` and the promotion gate: which subset, at which threshold."""

    split: one_of(SUBSET_GROUPS) = "test"
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    batch_size: Int = free_field(128, ge=1)
    out_dir: str = free_field("runs/eval")


class GridConfig(Section):
    """The grid: one trial per name, each its own training run (DVC foreach, Kubeflow ParallelFor).
    w0.3: fixed w = 0.3 (SSL-MAE-GS); learned: w = sigmoid(theta) (SSL-MAE-w_l); baseline: the one
    trial of a mode without reconstruction (supervised_baseline)."""

    # free: a trial's own config (its w, its out_dir) is what trains it; adding a trial retrains no other
    trials: Annotated[list[str], Field(min_length=1), AfterValidator(_trials)] = free_field(DEFAULT_TRIALS)
    out_dir: str = free_field("runs/grid")  # one folder per trial
    selected_dir: str = free_field("runs/selected")  # trials.csv, selected.json and the winner's model.pt


class TrackingConfig(Section):
    """MLflow tracking and model registry."""

    enabled: bool = free_field(True)
    uri: Optional[str] = free_field(None)  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here
    experiment: str = free_field("sslmae")
    registered_model: str = free_field("sslmae")
    promote_margin: float = free_field(0.0, ge=0.0)  # champion moves only if challenger beats it by this
    # promote scores a model on images it trained on (its model file lists them) only when this is true
    allow_overlap: bool = free_field(False)


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


def _walk(model: type[BaseModel], prefix: str = ""):
    """(dotted key, FieldInfo) of every leaf knob under `model`."""
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _walk(kind, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", info


def free_keys() -> set[str]:
    """The dotted keys marked free: they never change what training produces."""
    return {key for key, info in _walk(Config) if (info.json_schema_extra or {}).get("free")}


def string_keys() -> set[str]:
    """The dotted keys whose value is a string (an override `x.y=2024` keeps the text)."""
    return {key for key, info in _walk(Config) if info.annotation in (str, Optional[str])}
