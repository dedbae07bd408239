"""The model server's pure parts: the dynamic batcher's rule, and the checks an image passes before
it is decoded (the server process itself: tests/system/test_serve.py)."""

import asyncio
import base64
import io

import numpy as np
import pytest
from PIL import Image

from sslmae.serving.batcher import Batcher
from sslmae.serving.images import BadImage, ImageLimits, decode_image, from_base64


def _run(passes):
    def run(images):
        passes.append(len(images))
        return np.array([[float(img.sum())] for img in images])
    return run


def _gather(batcher, sizes):
    async def main():
        reqs = [[np.full((2, 2, 3), i, np.uint8)] * n for i, n in enumerate(sizes)]
        return await asyncio.gather(*(batcher.score(r) for r in reqs))
    return asyncio.run(main())


def test_concurrent_requests_share_a_pass_and_each_gets_its_own_rows():
    passes = []
    out = _gather(Batcher(_run(passes), max_batch=8, max_wait_ms=50), [1, 2, 3])
    assert passes == [6]
    assert [o[:, 0].tolist() for o in out] == [[0.0], [12.0, 12.0], [24.0] * 3]


def test_a_batch_closes_when_full_and_a_large_request_is_split():
    passes = []
    _gather(Batcher(_run(passes), max_batch=4, max_wait_ms=50), [3, 3, 9])
    assert max(passes) <= 4 and sum(passes) == 15


def test_without_batching_each_request_is_its_own_pass():
    passes = []
    _gather(Batcher(_run(passes), max_batch=8, max_wait_ms=50, batching=False), [1, 2, 3])
    assert sorted(passes) == [1, 2, 3]


def test_a_failing_model_fails_every_request_of_its_batch():
    def broken(images):
        raise RuntimeError("out of memory")
    with pytest.raises(RuntimeError, match="out of memory"):
        _gather(Batcher(broken, max_batch=8, max_wait_ms=10), [1, 1])


def _png(w, h):
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


def test_an_image_decodes_as_training_decodes_it():
    out = decode_image(_png(50, 40), 32, ImageLimits(), "x")
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8 and tuple(out[0, 0]) == (10, 20, 30)
    assert from_base64(base64.b64encode(b"abc").decode(), "x") == b"abc"
    assert from_base64({"b64": base64.urlsafe_b64encode(b"\xff\xfe").decode()}, "x") == b"\xff\xfe"


@pytest.mark.parametrize("data, limits, words", [
    (b"GIF89a not really", ImageLimits(), "not an image"),
    (_png(64, 64)[:60], ImageLimits(), "damaged or truncated"),
    (_png(4, 64), ImageLimits(), "below the 8-pixel minimum side"),
    (_png(300, 300), ImageLimits(max_pixels=200 * 200), "above the server's limit of 40,000 pixels"),
])
def test_an_image_that_cannot_be_scored_is_one_error_naming_it(data, limits, words):
    with pytest.raises(BadImage, match=words) as err:
        decode_image(data, 32, limits, "image[3]")
    assert str(err.value).startswith("image[3]: ")


@pytest.mark.parametrize("text", ["%%%", "", 42, "YWJ"])
def test_text_that_is_not_base64_is_refused(text):
    with pytest.raises(BadImage):
        from_base64(text, "image[0]")
