"""The unlabeled pool (`data.unlabeled`): archives of images nobody labeled, ingested beside the
labeled source, and the rule that keeps a pool image from counting twice or leaking into training.

Each source (a folder, an archive or an s3:// prefix, as `data.source` takes) is read as a folder of
images, recursively; an image's id is its file stem, unique across every source. A source that is an
ingested dataset (its manifest.parquet: files or shards, e.g. an archive ingested once as shards) gives
its images under their ids, their labels, if any, left out.

The rule, on `content_sha256` (the sha256 of an image's decoded pixels: its size and upright RGB
bytes, the digest ingest keeps for every image; the same pixels in another container give the same
digest, cleanvision's exact-duplicate rule with a stronger hash): a pool image with the pixels of a
labeled image is that labeled image. It is counted once, as labeled, and reported
(`ingest_report.json`, pool.same_as_labeled). Val and test are drawn from labeled images only, so a
pool copy of a val or test image never reaches training, not even through the reconstruction loss.
A pool id seen twice is one image when the pixels agree (the repeat is dropped and reported), else
an error, as is a pool id that names a labeled image with other pixels."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sslmae.datasets.layouts.files import index_images
from sslmae.datasets.layouts.manifest import NAMES as MANIFEST_NAMES
from sslmae.datasets.load import MANIFEST, load_dataset
from sslmae.datasets.problems import DatasetError, Problems
from sslmae.datasets.records import RecordTable
from sslmae.datasets.shards import read_member
from sslmae.datasets.sources import materialize
from sslmae.redact import redact

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"  # stored images are PNG or JPEG (sslmae.datasets.ingest)


def origin(i: int) -> str:
    """The origin recorded for images of data.unlabeled[i]."""
    return f"unlabeled/{i}"


DATASET_FILES = ("labels.csv", *MANIFEST_NAMES)  # what marks a folder as a labeled dataset (the two table layouts)


def check_belongs(source: str, pool: str, levels: int = 3) -> None:
    """A local pool folder that lies in another labeled dataset's folder than `source` (the embedded
    dataset's pool, data/synth/unlabeled, left in params when data.source changed) is refused: its
    images belong to that dataset's world, not to this one."""
    if "://" in pool or "://" in source:
        return
    home = Path(source).expanduser().resolve()
    for parent in list(Path(pool).expanduser().resolve().parents)[:levels]:
        if parent == home or home in parent.parents:
            return
        if any((parent / name).is_file() for name in DATASET_FILES):
            raise DatasetError(f"{pool}: this unlabeled source lies in {parent}, another labeled dataset than the "
                               f"source {source}: set data.unlabeled for this source ([] for none)")


def read_pool(sources: list[str], work: Path, problems: Problems, n_labels: int,
              s3_endpoint: str | None = None) -> list[RecordTable]:
    """One table of unlabeled records (labels all 0) per source, in the order given."""
    tables = []
    for i, source in enumerate(sources):
        root = materialize(source, work, s3_endpoint)
        if (root / MANIFEST).is_file():
            root = _images_of_dataset(root, work)
        index = index_images(root, problems, recursive=True, root=root)
        if not index:
            raise DatasetError(f"{redact(source)}: unlabeled source (data.unlabeled[{i}]) holds no image")
        table = RecordTable(str(root), n_labels, known=False, origin=origin(i))
        zeros = bytes(n_labels)
        for image, rel in index.items():
            table.append(image, rel, zeros)
        tables.append(table)
    return tables


def _images_of_dataset(root: Path, work: Path) -> Path:
    """An ingested dataset's images as a folder, each named by its id: its images/ folder, or the
    images of its shards written out to a fresh folder of `work` (a pool on shards is read once)."""
    data = load_dataset(root)
    if data.shards is None:
        return root / "images"
    out = Path(tempfile.mkdtemp(prefix="pool-", dir=work))
    index = data.shards
    for i, image in enumerate(data.ids):
        blob = read_member(root / index.names[index.shard[i]], int(index.offset[i]), int(index.size[i]))
        (out / f"{image}{'.png' if blob[:8] == PNG_MAGIC else '.jpg'}").write_bytes(blob)
    return out


class PoolRule:
    """The module's rule, applied as rows go by (labeled rows first): what to do with each pool row.
    Memory: 16 bytes of digest per labeled image and per pool id, never the images."""

    def __init__(self, labeled_ids):
        self.labeled_ids = set(labeled_ids)
        self.labeled: dict[bytes, str] = {}  # digest -> the first labeled image with it
        self.pool: dict[str, bytes] = {}  # pool id -> digest
        self.same_as_labeled: list[dict] = []
        self.repeated: list[dict] = []

    def add_labeled(self, image: str, content_sha256: str) -> None:
        self.labeled.setdefault(bytes.fromhex(content_sha256[:32]), image)

    def keep(self, image: str, content_sha256: str, origin: str, where: str) -> bool:
        """Whether a pool row is written; DatasetError for an id that names two different images."""
        digest = bytes.fromhex(content_sha256[:32])
        twin = self.labeled.get(digest)
        if twin is not None:
            self.same_as_labeled.append({"image": image, "origin": origin, "labeled": twin})
            return False
        if image in self.labeled_ids:
            raise DatasetError(f"{where}: image id {image!r} is also a labeled image, with other pixels: ids (file "
                               "stems) must be unique across data.source and data.unlabeled")
        first = self.pool.get(image)
        if first is None:
            self.pool[image] = digest
            return True
        if first != digest:
            raise DatasetError(f"{where}: image id {image!r} is already in the pool with other pixels: ids "
                               "(file stems) must be unique across data.unlabeled's sources")
        self.repeated.append({"image": image, "origin": origin})
        return False

    def report(self, counts: dict[str, int]) -> dict:
        """What ingest_report.json says about the pool: its images by origin and what was dropped."""
        return {"n_images": sum(counts.values()), "by_origin": counts, "same_as_labeled": self.same_as_labeled,
                "repeated": self.repeated}
