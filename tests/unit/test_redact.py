"""The one redaction rule for credentials in URIs (sslmae.redact)."""

from __future__ import annotations

import io

import pytest

from sslmae.redact import RedactingStream, redact, redacted


@pytest.mark.parametrize("given, shown", [
    ("http://alice:s3cret@host:5000", "http://***@host:5000"),
    ("https://token@github.com/x.git", "https://***@github.com/x.git"),
    ("s3://bucket/x?X-Amz-Signature=abcdef123", "s3://bucket/x?X-Amz-Signature=***"),
    ("https://b.s3.amazonaws.com/k.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2026&"
     "X-Amz-Date=20261203T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQo&"
     "X-Amz-Signature=f00d",
     "https://b.s3.amazonaws.com/k.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***&"
     "X-Amz-Date=20261203T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=***&"
     "X-Amz-Signature=***"),
    ("https://acct.blob.core.windows.net/c/b.tar?sv=2022-11-02&se=2026&sp=r&sig=AbC%2Bd",
     "https://acct.blob.core.windows.net/c/b.tar?sv=2022-11-02&se=2026&sp=r&sig=***"),
    ("https://storage.googleapis.com/b/o?X-Goog-Signature=0a1b#frag", "https://storage.googleapis.com/b/o?X-Goog-Signature=***#frag"),
    ("https://h/x?access_token=t1&page=2&password=p&client_secret=s&api_key=k",
     "https://h/x?access_token=***&page=2&password=***&client_secret=***&api_key=***"),
    ("data/synth", "data/synth"),
    ("s3://bucket/prefix", "s3://bucket/prefix"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
])
def test_credentials_in_uris_are_masked_and_nothing_else(given, shown):
    assert redact(given) == shown
    assert redact(shown) == shown  # idempotent: a redacted value compares equal to a re-redacted one


def test_text_around_uris_and_whole_configs():
    line = "error: s3://b/x?X-Amz-Signature=abc: not found (tracking http://u:p@h:1)"
    assert redact(line) == "error: s3://b/x?X-Amz-Signature=***: not found (tracking http://***@h:1)"
    cfg = {"data": {"source": "s3://b/x?sig=1", "img_size": 64, "labels": ["a?token=2"]},
           "tracking": {"uri": "http://u:p@h", "enabled": True}}
    assert redacted(cfg) == {"data": {"source": "s3://b/x?sig=***", "img_size": 64, "labels": ["a?token=***"]},
                             "tracking": {"uri": "http://***@h", "enabled": True}}
    assert cfg["data"]["source"] == "s3://b/x?sig=1"  # the original is untouched


def test_a_fresh_signature_on_the_same_object_redacts_to_the_same_value():
    assert redact("s3://b/x?X-Amz-Signature=one") == redact("s3://b/x?X-Amz-Signature=two")


def test_the_redacting_stream_masks_every_write():
    out = io.StringIO()
    stream = RedactingStream(out)
    assert stream.write("View run at http://alice:s3cret@host:5000/#/runs/1\n") == 51
    stream.flush()
    assert out.getvalue() == "View run at http://***@host:5000/#/runs/1\n"
