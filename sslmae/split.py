"""Stratified train/val/test and labeled/unlabeled splits.

Iterative stratification (Sechidis, Tsoumakas, Vlahavas, ECML-PKDD 2011) balances every
label across subsets, which a random split does not at small fractions. Multi-class data
(one-hot rows) is handled by the same algorithm, where it reduces to per-class stratification.
Images with identical pixels form one group and always land in the same subset.

The split file is a CSV table `image,subset` with subset in {labeled, unlabeled, val, test};
the subsets are disjoint and cover the dataset.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from sslmae.atomic import atomic_file
from sslmae.outputs import claim_file
from sslmae.datasets.load import load_dataset

SUBSETS = ("labeled", "unlabeled", "val", "test")
PAPER_FRACTION = 0.1  # split.fraction's default without a pool: the paper's protocol (labels of the rest hidden)
HISTORY_COLUMNS = ["generation", "image", "subset"]  # history_file: who joined which subset in which run
# what `evaluate.split` may name: one subset, or a group of them
SUBSET_GROUPS = {"labeled": ("labeled",), "unlabeled": ("unlabeled",), "val": ("val",), "test": ("test",),
                 "train": ("labeled", "unlabeled"), "all": SUBSETS}


class SplitError(ValueError):
    """A split cannot be made or read as asked; the message says why."""


def iterative_stratification(y: np.ndarray, proportions: list[float], rng: np.random.Generator) -> np.ndarray:
    """Assign each row of `y` (N, C) 0/1 to a fold; returns (N,) fold indices.

    Rare labels are distributed first, each example goes to the fold that most lacks
    its rarest label (ties: the fold that most lacks examples, then at random).
    """
    y = np.asarray(y, dtype=bool)
    n, c = y.shape
    props = np.asarray(proportions, dtype=float)
    props = props / props.sum()
    want_total = props * n
    want_label = props[:, None] * y.sum(0)[None, :]  # (K, C)
    fold = np.full(n, -1, dtype=np.int64)
    remaining = y.copy()
    left = np.ones(n, dtype=bool)

    def place(i: int, label: int | None) -> None:
        if label is None:
            cand = np.flatnonzero(want_total == want_total.max())
        else:
            best = want_label[:, label]
            cand = np.flatnonzero(best == best.max())
            if len(cand) > 1:
                sub = want_total[cand]
                cand = cand[sub == sub.max()]
        k = int(cand[rng.integers(len(cand))]) if len(cand) > 1 else int(cand[0])
        fold[i] = k
        want_total[k] -= 1
        want_label[k, y[i]] -= 1
        left[i] = False
        remaining[i] = False

    while remaining.any():
        counts = remaining.sum(0)
        counts = np.where(counts > 0, counts, np.iinfo(np.int64).max)
        label = int(np.argmin(counts))
        rows = np.flatnonzero(remaining[:, label])
        for i in rng.permutation(rows):
            place(int(i), label)
    for i in rng.permutation(np.flatnonzero(left)):  # rows without any positive label
        place(int(i), None)
    return fold


def _stratify_groups(y: np.ndarray, groups: np.ndarray, proportions, rng) -> np.ndarray:
    """Iterative stratification over groups (a group's labels: the OR of its rows)."""
    uniq, inverse = np.unique(groups, return_inverse=True)
    gy = np.zeros((len(uniq), y.shape[1]), dtype=bool)
    np.logical_or.at(gy, inverse, y.astype(bool))
    return iterative_stratification(gy, proportions, rng)[inverse]


def pixel_groups(paths: list[Path]) -> np.ndarray:
    """(N,) group ids: images with identical decoded pixels share an id."""
    ids: dict[str, int] = {}
    out = np.empty(len(paths), dtype=np.int64)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            h = hashlib.sha256(f"{im.mode}{im.size}".encode() + im.tobytes()).hexdigest()
        out[i] = ids.setdefault(h, len(ids))
    return out


def in_pool(known: np.ndarray | None, n: int) -> np.ndarray:
    """(n,) bool: which images are of the unlabeled pool; `known` None (a dataset without one): none."""
    return np.zeros(n, dtype=bool) if known is None else ~np.asarray(known, dtype=bool)


def make_split(
    y: np.ndarray,
    fraction: float | None,
    val: float,
    test: float,
    seed: int,
    groups: np.ndarray | None = None,
    predefined: np.ndarray | None = None,
    keep: np.ndarray | None = None,
    known: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) subset names. `predefined`: optional (N,) of train/val/test, honoured as given.
    `keep`: optional (N,) train/val/test or None: the side each already-split image keeps
    (a frozen test split across retrainings); only the None rows are stratified.
    `known`: optional (N,) bool, whether each image's labels are known; an image of the unlabeled
    pool (False) is always `unlabeled`, never val or test, and takes no part in the stratification.

    The labeled subset is `fraction` of train's labeled images (None: all of them when there is a
    pool, else PAPER_FRACTION), stratified, then topped up so that it holds at least one example of
    every label that has one in train.
    """
    y = np.asarray(y, dtype=bool)
    n = len(y)
    pool = in_pool(known, n)
    if fraction is None:
        fraction = 1.0 if pool.any() else PAPER_FRACTION
    if not 0 < fraction <= 1:
        raise SplitError(f"fraction: must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if predefined is not None:
        predefined = np.asarray(predefined, dtype=object)
        bad = sorted(set(predefined[~pool]) - {"train", "val", "test"}, key=str)
        if bad:
            raise SplitError(f"predefined split: values must be train/val/test, got {bad}")
        base = predefined.copy()
        base[pool] = "train"
    else:
        if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
            raise SplitError(f"val={val}, test={test}: each must be in [0, 1) and their sum < 1")
        sides = np.asarray(["train", "val", "test"], dtype=object)
        base = np.full(n, None, dtype=object) if keep is None else np.asarray(keep, dtype=object).copy()
        base[pool] = "train"  # the pool: unlabeled, below
        placed = np.asarray([b is not None for b in base])
        for g in np.unique(groups[~placed & np.isin(groups, groups[placed])]):  # new copies follow old ones
            base[(groups == g) & ~placed] = base[(groups == g) & placed][0]
        new = np.flatnonzero(np.asarray([b is None for b in base]))
        if len(new):
            folds = _stratify_groups(y[new], groups[new], [1 - val - test, val, test], rng)
            base[new] = sides[folds]
    out = base.copy()
    out[pool] = "unlabeled"
    train = np.flatnonzero((base == "train") & ~pool)  # train's labeled images
    if len(train) == 0:
        raise SplitError("the train subset has no labeled image")
    if fraction >= 1:
        out[train] = "labeled"
        return out
    folds = _stratify_groups(y[train], groups[train], [fraction, 1 - fraction], rng)
    labeled = np.zeros(n, dtype=bool)
    labeled[train[folds == 0]] = True
    if not labeled.any():
        labeled[train[rng.integers(len(train))]] = True
    in_train = np.zeros(n, dtype=bool)
    in_train[train] = True
    # top up: every label present in train gets at least one labeled example (rarest first)
    for c in np.argsort(y[train].sum(0), kind="stable"):
        if y[labeled, c].any() or not y[train, c].any():
            continue
        cand = np.flatnonzero(in_train & ~labeled & y[:, c])
        pick = cand[rng.integers(len(cand))]
        labeled[groups == groups[pick]] = True
    labeled &= in_train & ~pool
    out[train] = "unlabeled"
    out[labeled] = "labeled"
    return out


def split_dataset(
    dataset_dir: str | Path,
    out: str | Path,
    fraction: float | None = None,
    val: float = 0.1,
    test: float = 0.2,
    seed: int = 42,
    predefined_file: str | Path | None = None,
    keep_file: str | Path | None = None,
    frozen: bool = False,
    history: str | Path | None = None,
) -> pd.DataFrame:
    """Split a dataset folder (ingested, or labels-csv) and write the split table atomically
    to `out` (CSV). A predefined split comes from `predefined_file`, else from the manifest.
    `keep_file`: an earlier split table; its images keep their train/val/test side. `frozen`:
    without a keep_file, the table already at `out` is the earlier one (split.frozen).
    `history`: a CSV `generation,image,subset` that gains the images new to this split."""
    claim_file(out, "split", is_split_table)
    if frozen and keep_file is None and Path(out).is_file():
        keep_file = out  # read below, before `out` is replaced
    earlier = (dict(_split_table(keep_file, "earlier split file not found").itertuples(index=False)) if keep_file
               else {})  # image -> its subset in the earlier table
    data = load_dataset(dataset_dir)
    predefined = data.predefined
    if predefined_file is not None:
        predefined = read_predefined(predefined_file, data.ids, data.known)
    pool = in_pool(data.known, len(data.ids))
    unsplit = 0 if predefined is None else sum(p is None for p, q in zip(predefined, pool) if not q)
    if unsplit:
        raise SplitError(f"{dataset_dir}: the predefined split leaves {unsplit} labeled image(s) without a subset")
    groups = data.groups if data.groups is not None else pixel_groups(data.paths)
    keep = read_kept_sides(keep_file, data.ids) if keep_file is not None else None
    if keep is not None:
        _check_labels_kept(keep, pool, data.ids, keep_file)
    subsets = make_split(data.labels, fraction, val, test, seed, groups=groups, predefined=predefined, keep=keep,
                         known=data.known)
    table = pd.DataFrame({"image": data.ids, "subset": subsets})
    with atomic_file(out) as tmp:
        table.to_csv(tmp, index=False)
    if history is not None:
        before = table["image"].map(earlier)
        joined = before.isna()
        if data.known is not None:  # a pool image that gained labels joins `labeled` now
            joined |= (before == "unlabeled") & (table["subset"] == "labeled")
        append_history(history, table[joined])
    return table


def history_file(split_file: str | Path) -> Path:
    """The history beside a split table: data/split.csv -> data/split.history.csv."""
    path = Path(split_file)
    return path.with_name(f"{path.stem}.history.csv")


def append_history(path: str | Path, joined: pd.DataFrame) -> int:
    """Add `joined` (image,subset: the images new to the split, and pool images that gained labels)
    to the history CSV at `path` as one more generation (0 for the first); the generation."""
    path = Path(path)
    old = read_history(path)
    generation = int(old["generation"].max()) + 1 if old is not None and len(old) else 0
    new = joined.assign(generation=generation)[HISTORY_COLUMNS]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        (pd.concat([old, new]) if old is not None else new).to_csv(tmp, index=False)
    return generation


def is_split_table(path: Path) -> bool:
    """Did `sslmae split` write this file? (a CSV whose header is image,subset)"""
    with open(path, "rb") as fh:
        return fh.readline().strip() == b"image,subset"


def read_predefined(path: str | Path, ids: list[str], known: np.ndarray | None = None) -> np.ndarray:
    """(N,) train/val/test from a CSV `image,split`, aligned to `ids`: each labeled id's; a pool image's None."""
    table = pd.read_csv(path, dtype=str)
    if list(table.columns[:2]) != ["image", "split"]:
        raise SplitError(f"{path}: header must be 'image,split'")
    mapping = dict(zip(table["image"], table["split"]))
    missing = [i for i, q in zip(ids, in_pool(known, len(ids))) if not q and i not in mapping]
    if missing:
        raise SplitError(f"{path}: no split for {len(missing)} image(s), e.g. {missing[:3]}")
    return np.asarray([mapping.get(i) for i in ids], dtype=object)


def _check_labels_kept(keep: np.ndarray, pool: np.ndarray, ids: list[str], keep_file) -> None:
    """A val or test image of the earlier split must still have its labels: the pool never holds one."""
    lost = [i for i, side, q in zip(ids, keep, pool) if side in ("val", "test") and q]
    if lost:
        raise SplitError(f"{keep_file}: {len(lost)} val/test image(s) of the frozen split have no labels now "
                         f"(e.g. {lost[0]!r}); give them their labels again, or start over (split.frozen false)")


def read_kept_sides(path: str | Path, ids: list[str]) -> np.ndarray:
    """(N,) train/val/test for the images of an earlier split table (labeled and unlabeled
    are train), None for images it does not know (new data)."""
    table = _split_table(path, "earlier split file not found")
    side = {"labeled": "train", "unlabeled": "train", "val": "val", "test": "test"}
    mapping = {img: side[sub] for img, sub in zip(table["image"], table["subset"])}
    return np.asarray([mapping.get(i) for i in ids], dtype=object)


def _split_table(path: str | Path, missing: str) -> pd.DataFrame:
    """A split table (image,subset) checked row by row; SplitError names the row."""
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"{path}: {missing}")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(table.columns) != ["image", "subset"]:
        raise SplitError(f"{path}: header must be 'image,subset', got {','.join(table.columns)}")
    for row, (img, sub) in enumerate(zip(table["image"], table["subset"]), start=2):
        if sub not in SUBSETS:
            raise SplitError(f"{path}:{row}: subset of {img!r} must be one of {list(SUBSETS)}, got {sub!r}")
    if table["image"].duplicated().any():
        dup = table["image"][table["image"].duplicated()].iloc[0]
        raise SplitError(f"{path}: image {dup!r} appears twice")
    return table


def read_table(path: str | Path) -> pd.DataFrame:
    """The split table at `path` (image,subset), checked row by row."""
    return _split_table(path, "split file not found (run `sslmae split` first)")


def read_history(path: str | Path) -> pd.DataFrame | None:
    """The split history at `path` (generation,image,subset), or None where there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    old = pd.read_csv(path, dtype={"image": str, "subset": str})
    if list(old.columns) != HISTORY_COLUMNS:
        raise SplitError(f"{path}: not a split history (header must be {','.join(HISTORY_COLUMNS)})")
    return old


def scorable(subsets: np.ndarray, known: np.ndarray | None) -> np.ndarray:
    """`subsets` with the pool's rows set apart as "pool" (no subset group names it): nothing to score against."""
    return subsets if known is None else np.where(known, subsets, "pool").astype(object)


def training_sides(subsets: np.ndarray, known: np.ndarray | None) -> dict[str, np.ndarray]:
    """(N,) masks of what a run trains on: labeled images, images whose labels the split hides, the pool."""
    pool = in_pool(known, len(subsets))
    return {"labeled": subsets == "labeled", "hidden": (subsets == "unlabeled") & ~pool, "pool": pool}


def composition(ids: list[str], subsets: np.ndarray, known: np.ndarray | None) -> dict[str, str]:
    """MLflow tags: the size of each of the `training_sides`, and the sha256 of the side's sorted ids."""
    tags = {}
    for side, rows in training_sides(subsets, known).items():
        chosen = sorted(ids[i] for i in np.flatnonzero(rows))
        tags[f"sslmae.data.{side}"] = str(len(chosen))
        tags[f"sslmae.data.{side}.sha256"] = hashlib.sha256("\n".join(chosen).encode()).hexdigest()
    return tags


def read_split(path: str | Path, ids: list[str]) -> np.ndarray:
    """(N,) subset names aligned to `ids`. Raises SplitError naming the row on any mismatch."""
    table = read_table(path)
    mapping = dict(zip(table["image"], table["subset"]))
    missing = [i for i in ids if i not in mapping]
    extra = set(mapping) - set(ids)
    if missing or extra:
        raise SplitError(
            f"{path}: does not match the dataset: {len(missing)} image(s) without a subset "
            f"(e.g. {missing[:3]}), {len(extra)} unknown image(s) (e.g. {sorted(extra)[:3]})"
        )
    return np.asarray([mapping[i] for i in ids], dtype=object)
