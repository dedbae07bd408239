"""One stream's augmentation settings (params.yaml `augment.labeled` / `augment.unlabeled`): the
one definition, validated here and used as the config's section type.

The authors' settings (src/data/transforms.py at 800df98: lines 75-82 labeled, 63-74 unlabeled)
are `AUTHORS_LABELED` and `AUTHORS_UNLABELED`, the defaults.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from sslmae.knobs import OddInt, Range, Section, Unit, UnitRange


class StreamAugment(Section):
    """Probabilities are per image; a 0 turns an op off."""

    model_config = ConfigDict(frozen=True)  # shared defaults: never changed in place

    crop_scale: UnitRange  # area fraction of the random resized crop
    crop_ratio: Range  # its aspect-ratio range
    hflip: Unit
    vflip: Unit
    rot90: bool  # also transpose (p 0.5): with both flips, all 8 turns and mirrors (sslmae's option)
    jitter: Annotated[list[Annotated[float, Field(ge=0.0)]], Field(min_length=4, max_length=4)]  # b, c, s, hue
    jitter_p: Unit
    grayscale_p: Unit
    blur_p: Unit
    blur_kernel: OddInt
    blur_sigma: Range


_OFF = dict(vflip=0.0, rot90=False, jitter=[0.0, 0.0, 0.0, 0.0], jitter_p=0.0, grayscale_p=0.0, blur_p=0.0,
            blur_kernel=5, blur_sigma=[0.1, 2.0])
AUTHORS_LABELED = StreamAugment(**{**_OFF, "crop_scale": [0.67, 1.0], "crop_ratio": [3 / 4, 4 / 3], "hflip": 0.5})
AUTHORS_UNLABELED = StreamAugment(crop_scale=[0.4, 1.0], crop_ratio=[3 / 4, 4 / 3], hflip=0.5, vflip=0.5, rot90=False,
                                  jitter=[0.4, 0.4, 0.2, 0.1], jitter_p=0.8, grayscale_p=0.2, blur_p=0.5,
                                  blur_kernel=5, blur_sigma=[0.1, 2.0])
