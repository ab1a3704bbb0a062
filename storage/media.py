"""The media store: recordings, slices, frames and uploaded documents, by key.

Two backends behind one interface: a local directory (embedded mode) and an S3-compatible
bucket (scale-out). Keys are relative, slash-separated paths such as
``recordings/<class>/<participant>/mic/000001.webm``. Every blocking call runs in a thread,
never on the event loop; reads stream in chunks so a recording is never loaded whole just to
serve a range.
"""

from __future__ import annotations

import asyncio
import io
import os
import posixpath
import secrets
import shutil
import threading
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from storage.errors import BadRequest, NotFound

if TYPE_CHECKING:
    from classguard.settings import Settings

CHUNK = 256 * 1024
KeyList = list[str]  # (the stores have a method called ``list``)
Body = bytes | bytearray | memoryview | Path | IO[bytes] | AsyncIterable[bytes]


class InvalidMediaKey(BadRequest):
    """A key that could escape the store's root or is otherwise malformed."""


class MediaNotFound(NotFound):
    """No object under this key."""


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise ``InvalidMediaKey``.

    Rejected: empty, absolute, backslashes, NUL, ``.``/``..`` or empty segments, and segments
    starting with a dot (hidden names are the store's own, e.g. its temp directory). Keys may
    come from user input, so this is the only gate between a request and the file system.
    """
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise InvalidMediaKey("media key must be a non-empty string of at most 1024 characters")
    if "\\" in key or "\x00" in key or key.startswith("/"):
        raise InvalidMediaKey(f"invalid media key {key!r}")
    for part in key.split("/"):
        if not part or part.startswith("."):
            raise InvalidMediaKey(f"invalid media key {key!r}")
    return key


def _validate_prefix(prefix: str) -> str:
    if prefix == "":
        return prefix
    # A prefix may end in "/" (a folder) or in a partial name.
    validate_key(prefix.rstrip("/") or "x")
    return prefix


@runtime_checkable
class MediaStore(Protocol):
    """What every backend offers. Ranges use Python slice semantics: ``end`` is exclusive."""

    async def put(self, key: str, data: Body, content_type: str = "application/octet-stream") -> int:
        """Store ``data`` under ``key`` atomically (readers see the old object or the whole new one).

        Returns the number of bytes stored.
        """
        ...

    async def put_file(self, key: str, local_path: Path | str, content_type: str = "application/octet-stream") -> int:
        ...

    async def get_bytes(self, key: str) -> bytes:
        ...

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of the object in chunks (``end=None``: to the end)."""
        ...

    async def size(self, key: str) -> int:
        ...

    async def exists(self, key: str) -> bool:
        ...

    async def delete(self, key: str) -> bool:
        """Delete the object; returns whether it existed. Deleting a missing key is not an error."""
        ...

    async def list(self, prefix: str = "") -> KeyList:
        """Keys starting with ``prefix`` (a plain string prefix, as in S3), sorted."""
        ...

    async def download_to(self, key: str, local_path: Path | str) -> Path:
        """Copy the object to a local file (for ffmpeg and friends), atomically."""
        ...


# --- local directory --------------------------------------------------------------------------


class LocalMediaStore:
    """Objects as files under ``root``. Writes go to ``root/.tmp`` and are renamed into place."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self._tmp = self.root / ".tmp"

    def path_of(self, key: str) -> Path:
        """The file behind ``key`` (validated; never outside ``root``)."""
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root):  # e.g. a symlink planted inside the root
            raise InvalidMediaKey(f"invalid media key {key!r}")
        return path

    def _temp_path(self) -> Path:
        self._tmp.mkdir(parents=True, exist_ok=True)
        return self._tmp / f"{secrets.token_hex(8)}.part"

    def _commit(self, tmp: Path, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)

    async def put(self, key: str, data: Body, content_type: str = "application/octet-stream") -> int:
        final = self.path_of(key)
        if isinstance(data, Path):
            return await self.put_file(key, data, content_type)
        if isinstance(data, bytes | bytearray | memoryview):
            return await asyncio.to_thread(self._write_bytes, final, bytes(data))
        if hasattr(data, "read"):
            return await asyncio.to_thread(self._write_stream, final, data)  # type: ignore[arg-type]
        return await self._write_async(final, data)

    async def put_file(self, key: str, local_path: Path | str, content_type: str = "application/octet-stream") -> int:
        final = self.path_of(key)
        return await asyncio.to_thread(self._copy_file, Path(local_path), final)

    def _write_bytes(self, final: Path, data: bytes) -> int:
        return self._write_stream(final, io.BytesIO(data))

    def _write_stream(self, final: Path, stream: IO[bytes]) -> int:
        tmp = self._temp_path()
        n = 0
        try:
            with open(tmp, "wb") as fh:
                while chunk := stream.read(CHUNK):
                    fh.write(chunk)
                    n += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            self._commit(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return n

    def _copy_file(self, src: Path, final: Path) -> int:
        with open(src, "rb") as fh:
            return self._write_stream(final, fh)

    async def _write_async(self, final: Path, chunks: AsyncIterable[bytes]) -> int:
        tmp = await asyncio.to_thread(self._temp_path)
        fh = await asyncio.to_thread(open, tmp, "wb")
        n = 0
        try:
            async for chunk in chunks:
                await asyncio.to_thread(fh.write, chunk)
                n += len(chunk)
            await asyncio.to_thread(_flush_sync, fh)
            fh.close()
            await asyncio.to_thread(self._commit, tmp, final)
        except BaseException:
            fh.close()
            tmp.unlink(missing_ok=True)
            raise
        return n

    async def purge_temp(self, older_than_seconds: float = 3600) -> int:
        """Remove temp files left by writers that died mid-write (a crash, not an exception)."""
        import time

        def _purge() -> int:
            if not self._tmp.is_dir():
                return 0
            cutoff, n = time.time() - older_than_seconds, 0
            for p in self._tmp.iterdir():
                if p.is_file() and p.stat().st_mtime < cutoff:
                    p.unlink(missing_ok=True)
                    n += 1
            return n

        return await asyncio.to_thread(_purge)

    async def get_bytes(self, key: str) -> bytes:
        path = self.path_of(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise MediaNotFound(f"no media object {key!r}") from None

    async def open_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self.path_of(key)
        try:
            fh = await asyncio.to_thread(open, path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise MediaNotFound(f"no media object {key!r}") from None
        try:
            await asyncio.to_thread(fh.seek, start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                want = CHUNK if remaining is None else min(CHUNK, remaining)
                chunk = await asyncio.to_thread(fh.read, want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            fh.close()

    async def size(self, key: str) -> int:
        path = self.path_of(key)
        try:
            st = await asyncio.to_thread(path.stat)
        except (FileNotFoundError, NotADirectoryError):
            raise MediaNotFound(f"no media object {key!r}") from None
        if not path.is_file():
            raise MediaNotFound(f"no media object {key!r}")
        return st.st_size

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path_of(key).is_file)

    async def delete(self, key: str) -> bool:
        path = self.path_of(key)

        def _rm() -> bool:
            try:
                path.unlink()
                return True
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return False

        return await asyncio.to_thread(_rm)

    async def list(self, prefix: str = "") -> KeyList:
        _validate_prefix(prefix)
        base_dir = posixpath.dirname(prefix)
        root = self.root

        def _walk() -> KeyList:
            start = root / base_dir if base_dir else root
            if not start.is_dir():
                return []
            keys = []
            for dirpath, dirnames, filenames in os.walk(start):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel_dir = Path(dirpath).relative_to(root).as_posix()
                for name in filenames:
                    if name.startswith("."):
                        continue
                    key = name if rel_dir == "." else f"{rel_dir}/{name}"
                    if key.startswith(prefix):
                        keys.append(key)
            return sorted(keys)

        return await asyncio.to_thread(_walk)

    async def download_to(self, key: str, local_path: Path | str) -> Path:
        src = self.path_of(key)
        dest = Path(local_path)

        def _copy() -> None:
            tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
            try:
                shutil.copyfile(src, tmp)
                os.replace(tmp, dest)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

        try:
            await asyncio.to_thread(_copy)
        except (FileNotFoundError, IsADirectoryError) as exc:
            if not src.is_file():
                raise MediaNotFound(f"no media object {key!r}") from None
            raise exc
        return dest


def _flush_sync(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())


# --- S3-compatible bucket --------------------------------------------------------------------


class S3MediaStore:
    """Objects in an S3-compatible bucket (AWS, MinIO, ...), through boto3 in worker threads.

    The bucket is created on first use if it does not exist. S3 puts are atomic by nature.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        client: Any = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.region = region
        self._client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(retries={"max_attempts": 4, "mode": "standard"}, max_pool_connections=20),
        )
        self._ready = False
        self._ready_lock = threading.Lock()

    def _ensure_bucket(self) -> Any:
        if self._ready:
            return self._client
        with self._ready_lock:
            if not self._ready:
                from botocore.exceptions import ClientError

                try:
                    self._client.head_bucket(Bucket=self.bucket)
                except ClientError as exc:
                    if _status(exc) not in (404, 400) and _code(exc) not in ("404", "NoSuchBucket"):
                        raise
                    kwargs: dict[str, Any] = {"Bucket": self.bucket}
                    if self.region != "us-east-1":
                        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
                    try:
                        self._client.create_bucket(**kwargs)
                    except ClientError as exc2:
                        if _code(exc2) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                            raise
                self._ready = True
        return self._client

    async def _call(self, method: str, key: str | None = None, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        def _do() -> Any:
            return getattr(self._ensure_bucket(), method)(**kwargs)

        try:
            return await asyncio.to_thread(_do)
        except ClientError as exc:
            if key is not None and (_status(exc) == 404 or _code(exc) in ("NoSuchKey", "404", "NotFound")):
                raise MediaNotFound(f"no media object {key!r}") from None
            raise

    async def put(self, key: str, data: Body, content_type: str = "application/octet-stream") -> int:
        validate_key(key)
        if isinstance(data, Path):
            return await self.put_file(key, data, content_type)
        if isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
            await self._call("put_object", Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
            return len(body)
        if hasattr(data, "read"):
            counter = _CountingReader(data)  # type: ignore[arg-type]
            await self._call("upload_fileobj", Fileobj=counter, Bucket=self.bucket, Key=key,
                             ExtraArgs={"ContentType": content_type})
            return counter.count
        # An async stream: spool to a temp file (bounded memory), then a multipart-capable upload.
        import tempfile

        spool = await asyncio.to_thread(tempfile.TemporaryFile)
        try:
            n = 0
            async for chunk in data:  # type: ignore[union-attr]
                await asyncio.to_thread(spool.write, chunk)
                n += len(chunk)
            await asyncio.to_thread(spool.seek, 0)
            await self._call("upload_fileobj", Fileobj=spool, Bucket=self.bucket, Key=key,
                             ExtraArgs={"ContentType": content_type})
            return n
        finally:
            spool.close()

    async def put_file(self, key: str, local_path: Path | str, content_type: str = "application/octet-stream") -> int:
        validate_key(key)
        path = Path(local_path)
        size = (await asyncio.to_thread(path.stat)).st_size
        await self._call("upload_file", Filename=str(path), Bucket=self.bucket, Key=key,
                         ExtraArgs={"ContentType": content_type})
        return size

    async def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        resp = await self._call("get_object", key, Bucket=self.bucket, Key=key)
        body = resp["Body"]
        try:
            data: bytes = await asyncio.to_thread(body.read)
        finally:
            body.close()
        return data

    async def open_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        validate_key(key)
        if end is not None and end <= start:
            # S3 has no empty range; still report a missing object.
            await self.size(key)
            return
        rng = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start > 0 or end is not None:
            kwargs["Range"] = rng
        from botocore.exceptions import ClientError

        try:
            resp = await self._call("get_object", key, **kwargs)
        except ClientError as exc:
            if _status(exc) == 416:  # start past the end: nothing to stream
                return
            raise
        body = resp["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK):
                yield chunk
        finally:
            body.close()

    async def size(self, key: str) -> int:
        validate_key(key)
        resp = await self._call("head_object", key, Bucket=self.bucket, Key=key)
        return int(resp["ContentLength"])

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except MediaNotFound:
            return False
        return True

    async def delete(self, key: str) -> bool:
        existed = await self.exists(key)
        if existed:
            await self._call("delete_object", Bucket=self.bucket, Key=key)
        return existed

    async def list(self, prefix: str = "") -> KeyList:
        _validate_prefix(prefix)

        def _all() -> KeyList:
            client = self._ensure_bucket()
            keys: KeyList = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
            return sorted(keys)

        return await asyncio.to_thread(_all)

    async def download_to(self, key: str, local_path: Path | str) -> Path:
        validate_key(key)
        dest = Path(local_path)
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        try:
            await self._call("download_file", key, Bucket=self.bucket, Key=key, Filename=str(tmp))
            await asyncio.to_thread(os.replace, tmp, dest)
        except BaseException:
            await asyncio.to_thread(tmp.unlink, True)
            raise
        return dest


class _CountingReader(io.RawIOBase):
    """Counts the bytes boto3 reads from a caller's stream."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self.inner.read(-1 if size is None else size)
        self.count += len(data)
        return data


def _status(exc: Any) -> int | None:
    meta = getattr(exc, "response", {}).get("ResponseMetadata", {})
    status = meta.get("HTTPStatusCode")
    return int(status) if status is not None else None


def _code(exc: Any) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class RegionalMediaStore:
    """Keeps each object in the store of the region its key starts with (privacy promise 9).

    Keys of personal media begin with the owner's region (``eu/slices/…``); the settings map a
    region to its own directory or bucket. Keys without a known region prefix (derived,
    short-lived artefacts) go to the default store.
    """

    def __init__(self, regions: dict[str, MediaStore], default: MediaStore) -> None:
        self.regions = regions
        self.default = default

    def store_for(self, key: str) -> MediaStore:
        return self.regions.get(key.split("/", 1)[0], self.default)

    async def put(self, key: str, data: Body, content_type: str = "application/octet-stream") -> int:
        return await self.store_for(key).put(key, data, content_type)

    async def put_file(self, key: str, local_path: Path | str, content_type: str = "application/octet-stream") -> int:
        return await self.store_for(key).put_file(key, local_path, content_type)

    async def get_bytes(self, key: str) -> bytes:
        return await self.store_for(key).get_bytes(key)

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self.store_for(key).open_range(key, start, end)

    async def size(self, key: str) -> int:
        return await self.store_for(key).size(key)

    async def exists(self, key: str) -> bool:
        return await self.store_for(key).exists(key)

    async def delete(self, key: str) -> bool:
        return await self.store_for(key).delete(key)

    async def list(self, prefix: str = "") -> KeyList:
        region = prefix.split("/", 1)[0]
        if "/" in prefix and region in self.regions:
            return await self.regions[region].list(prefix)
        keys: set[str] = set()
        for store in (self.default, *self.regions.values()):
            keys.update(await store.list(prefix))
        return sorted(keys)

    async def download_to(self, key: str, local_path: Path | str) -> Path:
        return await self.store_for(key).download_to(key, local_path)


def _single_store(settings: Settings, *, bucket: str | None = None, root: Path | None = None) -> MediaStore:
    if settings.media_backend == "s3":
        return S3MediaStore(
            bucket or settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )
    assert settings.media_dir is not None
    return LocalMediaStore(root or settings.media_dir)


def build_media_store(settings: Settings) -> MediaStore:
    """The media store the settings ask for (``media_backend``: ``local`` or ``s3``), split per
    region when ``media_regions`` maps regions to their own directory (local) or bucket (s3)."""
    default = _single_store(settings)
    if not settings.media_regions:
        return default
    regions: dict[str, MediaStore] = {}
    for region, where in settings.media_regions.items():
        if settings.media_backend == "s3":
            regions[region] = _single_store(settings, bucket=where)
        else:
            regions[region] = _single_store(settings, root=Path(where))
    return RegionalMediaStore(regions, default)
