"""`sslmae synth`: the embedded synthetic dataset (params `synth`)."""

from sslmae.cli.params import add_params, knob_flag, load_params
from sslmae.datasets.synth import write_synthetic


def add_arguments(p) -> None:
    knob_flag(p, "--out", "synth.out", "dataset folder to write")
    knob_flag(p, "--n", "synth.n", "number of scenes")
    knob_flag(p, "--unlabeled", "synth.unlabeled", "number of scenes without labels (the pool, in OUT/unlabeled/)")
    knob_flag(p, "--size", "synth.size", "image side in pixels")
    knob_flag(p, "--seed", "synth.seed", "random seed")
    knob_flag(p, "--bands", "synth.bands", "3: RGB PNG scenes | 12: Sentinel-2-like 16-bit GeoTIFFs")
    add_params(p)


def run(args) -> None:
    s = load_params(args).synth
    out = write_synthetic(s.out, n=s.n, size=s.size, seed=s.seed, unlabeled=s.unlabeled, bands=s.bands)
    pool = f" and {s.unlabeled} without labels to {out}/unlabeled" if s.unlabeled else ""
    print(f"wrote {s.n} synthetic scenes ({s.size}px, {s.bands} bands) to {out}{pool}")
