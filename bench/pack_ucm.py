"""Re-encode UCM_mlc small enough to copy to a GPU machine with a checkout of the repository.

Every image is decoded and saved again as JPEG quality 85 at its native size (about 41 MB in
all, against 69 MB at quality 95); labels.csv, split_seed42.csv and SOURCE.txt are copied as
they are. The output folder is git-ignored (.ucm/) and written atomically.

    python bench/pack_ucm.py                      # ../shared/datasets/ucm_mlc -> .ucm/ucm_mlc
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TABLES = ("labels.csv", "split_seed42.csv", "SOURCE.txt")


def pack(src: Path, dst: Path, quality: int = 85) -> int:
    """Re-encode src/images/*.jpg into dst/images; copy the tables. Returns the bytes written."""
    from sslmae.atomic import atomic_dir

    images = sorted((src / "images").glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"{src / 'images'}: no .jpg images")
    missing = [t for t in TABLES[:2] if not (src / t).is_file()]
    if missing:
        raise FileNotFoundError(f"{src}: missing {', '.join(missing)}")
    with atomic_dir(dst, "pack_ucm") as tmp:
        (tmp / "images").mkdir()
        for path in images:
            with Image.open(path) as img:
                img.convert("RGB").save(tmp / "images" / path.name, "JPEG", quality=quality)
        for name in TABLES:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
        note = tmp / "SOURCE.txt"
        with open(note, "a", encoding="utf-8") as fh:
            fh.write(f"\n[bench/pack_ucm.py] images re-encoded as JPEG quality {quality}, native size kept.\n")
    return sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", type=Path, default=REPO.parent / "shared" / "datasets" / "ucm_mlc")
    p.add_argument("--dst", type=Path, default=REPO / ".ucm" / "ucm_mlc")
    p.add_argument("--quality", type=int, default=85)
    args = p.parse_args(argv)
    try:
        size = pack(args.src, args.dst, args.quality)
    except FileNotFoundError as exc:
        print(f"pack_ucm: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
