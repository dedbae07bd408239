"""A store: a folder that is either an `s3://bucket/prefix` (credentials and endpoint from the
environment: AWS_*, the pipeline's `sslmae-s3` secret) or a local or mounted folder. What a
pipeline keeps outside a pod lives in one (the canonical dataset by digest, trial checkpoints keyed
by run and trial), and `ingest --format shards --out s3://...` writes a dataset into one. A file
appears whole under its name or not at all: S3 objects do, local files are written under a
temporary name and renamed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from sslmae.atomic import atomic_file
from sslmae.datasets.problems import SourceError
from sslmae.datasets.s3 import _MISSING_KEY, _get_object, _list_keys, _parse_s3, _s3_client, _s3_error


class Store:
    """`Store("s3://bucket/prefix")` or `Store("/mnt/claim/sslmae")`; paths below it are
    '/'-separated relative names."""

    def __init__(self, uri: str, _client=None):
        if not uri:
            raise ValueError("a store needs a location: s3://bucket/prefix or a mounted folder")
        self.uri = uri.rstrip("/") if uri.rstrip("/") else uri
        self.is_s3 = uri.startswith("s3://")
        self._client = _client
        if self.is_s3:
            self.bucket, self.prefix = _parse_s3(self.uri)
            self.prefix = self.prefix.strip("/")

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    def child(self, *parts: str) -> "Store":
        return Store("/".join([self.uri, *(p.strip("/") for p in parts)]), _client=self._client)

    # ------------------------------------------------------------------ S3 plumbing

    def _key(self, rel: str) -> str:
        return "/".join(p for p in (self.prefix, rel.strip("/")) if p)

    def _s3(self):
        if self._client is None:
            self._client = _s3_client(None, self.uri)
        return self._client

    def _errors(self):
        from botocore.exceptions import BotoCoreError, ClientError  # optional, as boto3: only S3 stores need it

        return BotoCoreError, ClientError

    def _local(self, rel: str) -> Path:
        return Path(self.uri).joinpath(*[p for p in rel.split("/") if p])

    # ------------------------------------------------------------------ operations

    def put(self, path: str | Path, rel: str) -> None:
        """Copy the local file `path` to `rel`."""
        if not self.is_s3:
            with atomic_file(self._local(rel)) as tmp:
                shutil.copyfile(path, tmp)
            return
        client = self._s3()
        try:
            client.upload_file(str(path), self.bucket, self._key(rel))
        except self._errors() as exc:
            raise _s3_error(exc, f"s3://{self.bucket}/{self._key(rel)}", client.meta.endpoint_url) from exc

    def get(self, rel: str, dest: str | Path) -> bool:
        """Copy `rel` to the local file `dest` (written whole or not at all); False when absent."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.get-{os.getpid()}-", dir=dest.parent)
        os.close(fd)
        try:
            if not self.is_s3:
                src = self._local(rel)
                if not src.is_file():
                    return False
                shutil.copyfile(src, name)
            else:
                client = self._s3()
                uri = f"s3://{self.bucket}/{self._key(rel)}"
                try:
                    _get_object(client, self.bucket, self._key(rel), Path(name))
                except self._errors() as exc:
                    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
                    if code in _MISSING_KEY:
                        return False
                    raise _s3_error(exc, uri, client.meta.endpoint_url) from exc
            os.chmod(name, 0o644)
            os.replace(name, dest)
            return True
        finally:
            if os.path.exists(name):
                os.unlink(name)

    def read_range(self, rel: str, offset: int, size: int) -> bytes:
        """`size` bytes of `rel` from `offset` (an S3 range request; a pread locally)."""
        if not self.is_s3:
            with open(self._local(rel), "rb") as fh:
                fh.seek(offset)
                data = fh.read(size)
        else:
            client = self._s3()
            try:
                data = client.get_object(Bucket=self.bucket, Key=self._key(rel),
                                         Range=f"bytes={offset}-{offset + size - 1}")["Body"].read()
            except self._errors() as exc:
                raise _s3_error(exc, f"s3://{self.bucket}/{self._key(rel)}", client.meta.endpoint_url) from exc
        if len(data) != size:
            raise SourceError(f"{self.uri}/{rel}: {size} bytes expected at offset {offset}, got {len(data)}")
        return data

    def copy_to(self, rel: str, other: "Store", other_rel: str) -> None:
        """`rel` copied to `other_rel` of `other`, a store of the same kind (server-side on S3)."""
        if not self.is_s3:
            other.put(self._local(rel), other_rel)
            return
        client = self._s3()
        try:
            client.copy({"Bucket": self.bucket, "Key": self._key(rel)}, other.bucket, other._key(other_rel))
        except self._errors() as exc:
            raise _s3_error(exc, f"s3://{self.bucket}/{self._key(rel)}", client.meta.endpoint_url) from exc

    def size(self, rel: str) -> int:
        """Bytes of the file `rel`."""
        if not self.is_s3:
            return self._local(rel).stat().st_size
        client = self._s3()
        try:
            return int(client.head_object(Bucket=self.bucket, Key=self._key(rel))["ContentLength"])
        except self._errors() as exc:
            raise _s3_error(exc, f"s3://{self.bucket}/{self._key(rel)}", client.meta.endpoint_url) from exc

    def exists(self, rel: str) -> bool:
        if not self.is_s3:
            return self._local(rel).is_file()
        client = self._s3()
        try:
            client.head_object(Bucket=self.bucket, Key=self._key(rel))
            return True
        except self._errors() as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code in _MISSING_KEY:
                return False
            raise _s3_error(exc, f"s3://{self.bucket}/{self._key(rel)}", client.meta.endpoint_url) from exc

    def keys(self, rel: str = "") -> list[str]:
        """Every file under `rel`, as names relative to this store, sorted."""
        if not self.is_s3:
            base = self._local(rel)
            if not base.is_dir():
                return []
            root = Path(self.uri)
            return sorted(p.relative_to(root).as_posix() for p in base.rglob("*")
                          if p.is_file() and ".get-" not in p.name and ".tmp-" not in p.name)
        client = self._s3()
        prefix = self._key(rel)
        prefix = prefix + "/" if prefix else ""
        try:
            found = _list_keys(client, self.bucket, prefix)
        except self._errors() as exc:
            raise _s3_error(exc, f"s3://{self.bucket}/{prefix}", client.meta.endpoint_url) from exc
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(k[cut:] for k in found if not k.endswith("/"))

    def delete(self, rel: str) -> None:
        """Delete the file `rel` (nothing when absent)."""
        if not self.is_s3:
            self._local(rel).unlink(missing_ok=True)
            return
        client = self._s3()
        try:
            client.delete_object(Bucket=self.bucket, Key=self._key(rel))
        except self._errors() as exc:
            raise _s3_error(exc, f"s3://{self.bucket}/{self._key(rel)}", client.meta.endpoint_url) from exc

    def remove(self, rel: str = "") -> int:
        """Delete everything under `rel` (this whole store when empty); the number of files."""
        names = self.keys(rel)
        if not self.is_s3:
            target = self._local(rel)
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            return len(names)
        client = self._s3()
        try:
            for i in range(0, len(names), 1000):  # DeleteObjects takes at most 1000 keys
                batch = [{"Key": self._key(n)} for n in names[i:i + 1000]]
                client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        except self._errors() as exc:
            raise _s3_error(exc, self.uri, client.meta.endpoint_url) from exc
        return len(names)


def check_store(uri: str) -> str:
    """`uri` when it names a store: empty, `s3://bucket[/prefix]`, or an absolute path."""
    if not uri or uri.startswith("s3://") or os.path.isabs(uri):
        if uri.startswith("s3://"):
            _parse_s3(uri)  # SourceError when there is no bucket
        return uri
    raise SourceError(f"{uri}: a store is s3://bucket/prefix or an absolute path mounted in every pod")
