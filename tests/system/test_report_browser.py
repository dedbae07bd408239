"""The HTML report in a real browser (Debian's Chromium, headless): every figure is in the DOM and
decodes. Skipped where no chromium binary is installed (`make chromium`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslmae.report.markup import write_report
from sslmae.report.pages import render_grid
from tests.unit.test_report import _img_count, eval_dir, fractions, grid_dir  # noqa: F401  (fixtures)

CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  document.body.dataset.imagesTotal = imgs.length;
  document.body.dataset.imagesDecoded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
});
</script>
"""


def _chromium(home: Path, *args: str) -> subprocess.CompletedProcess:
    profile = home / f"profile-{len(list(home.glob('profile-*')))}"  # a fresh profile per call
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *args]
    # HOME too: nothing of the browser lands in the real home folder
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(home)}, check=True)


def test_report_renders_in_chromium(grid_dir, eval_dir, fractions, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install -y chromium)")
    out = write_report(render_grid(grid_dir, eval_dir, fractions), tmp_path / "report.html")
    n_images = _img_count(out.read_text(encoding="utf-8"))
    home = tmp_path / "browser"
    home.mkdir()

    # every image is in the DOM the browser built
    dom = _chromium(home, "--dump-dom", out.as_uri()).stdout
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', dom)) == n_images
    assert "Selected trial" in dom

    # and every image decoded: a copy of the page with a check script (the product has none)
    probe = tmp_path / "probe.html"
    probe.write_text(out.read_text(encoding="utf-8").replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    dom = _chromium(home, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert f'data-images-total="{n_images}"' in body, body
    assert f'data-images-decoded="{n_images}"' in body, body

    # a screenshot: the page paints (not one flat colour)
    shot = tmp_path / "shot.png"
    _chromium(home, f"--screenshot={shot}", "--window-size=1200,3000", out.as_uri())
    img = Image.open(shot)
    assert img.size == (1200, 3000)
    assert len(np.unique(np.asarray(img.convert("L")))) > 50
    if os.environ.get("SSLMAE_KEEP_SCREENSHOT"):  # for a human to look at
        shutil.copy(shot, os.environ["SSLMAE_KEEP_SCREENSHOT"])
