"""The media store, one suite over both backends: a local directory and S3 (moto's server mode)."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, cast

import pytest

from classguard.settings import Settings
from storage.media import (
    InvalidMediaKey,
    LocalMediaStore,
    MediaNotFound,
    MediaStore,
    S3MediaStore,
    build_media_store,
    validate_key,
)

BLOB = bytes(range(256)) * 4099  # ~1 MiB, not a multiple of the chunk size


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def make_s3(endpoint: str, bucket: str | None = None) -> S3MediaStore:
    return S3MediaStore(bucket or f"cg-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint, region="us-east-1",
                        access_key_id="test", secret_access_key="test")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MediaStore:
    if request.param == "local":
        return LocalMediaStore(tmp_path / "media")
    return make_s3(request.getfixturevalue("moto_endpoint"))


async def _collect(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in it])


async def test_put_get_size_exists_delete(store: MediaStore) -> None:
    key = "recordings/c1/p1/mic/000001.webm"
    assert not await store.exists(key)
    assert await store.put(key, BLOB, "audio/webm") == len(BLOB)
    assert await store.exists(key)
    assert await store.size(key) == len(BLOB)
    assert await store.get_bytes(key) == BLOB
    assert await store.delete(key) is True
    assert not await store.exists(key)
    assert await store.delete(key) is False  # idempotent


async def test_overwrite_replaces_whole_object(store: MediaStore) -> None:
    await store.put("a/b", b"x" * 1000)
    await store.put("a/b", b"short")
    assert await store.get_bytes("a/b") == b"short"


async def test_put_from_file_stream_and_async_iterable(store: MediaStore, tmp_path: Path) -> None:
    src = tmp_path / "src.webm"
    src.write_bytes(BLOB)
    assert await store.put_file("f/file.webm", src, "video/webm") == len(BLOB)
    assert await store.put("f/path.webm", src) == len(BLOB)
    assert await store.put("f/stream.bin", io.BytesIO(BLOB)) == len(BLOB)

    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(BLOB), 100_000):
            yield BLOB[i : i + 100_000]

    assert await store.put("f/async.bin", gen()) == len(BLOB)
    for key in ("f/file.webm", "f/path.webm", "f/stream.bin", "f/async.bin"):
        assert await store.get_bytes(key) == BLOB, key


@pytest.mark.parametrize(("start", "end"), [(0, None), (0, 1), (10, 20), (262_143, 262_145), (1000, len(BLOB)),
                                            (len(BLOB) - 1, None), (5, 5), (len(BLOB), None)])
async def test_open_range(store: MediaStore, start: int, end: int | None) -> None:
    await store.put("r/blob", BLOB)
    assert await _collect(store.open_range("r/blob", start, end)) == BLOB[start:end]


async def test_open_range_streams_in_chunks(store: MediaStore) -> None:
    await store.put("r/blob", BLOB)
    chunks = [c async for c in store.open_range("r/blob", 0, None)]
    assert len(chunks) > 1 and max(len(c) for c in chunks) <= 256 * 1024


async def test_missing_object_is_not_found(store: MediaStore, tmp_path: Path) -> None:
    with pytest.raises(MediaNotFound):
        await store.get_bytes("nope/x")
    with pytest.raises(MediaNotFound):
        await store.size("nope/x")
    with pytest.raises(MediaNotFound):
        await _collect(store.open_range("nope/x", 0, 10))
    with pytest.raises(MediaNotFound):
        await store.download_to("nope/x", tmp_path / "out")
    assert not (tmp_path / "out").exists()


async def test_list_by_prefix(store: MediaStore) -> None:
    for key in ("rec/c1/a.webm", "rec/c1/b.webm", "rec/c2/a.webm", "rec/c10/a.webm", "docs/x.pdf"):
        await store.put(key, b"1")
    assert await store.list("rec/c1/") == ["rec/c1/a.webm", "rec/c1/b.webm"]
    assert await store.list("rec/c1") == ["rec/c1/a.webm", "rec/c1/b.webm", "rec/c10/a.webm"]
    assert await store.list("rec/c1/a") == ["rec/c1/a.webm"]
    assert len(await store.list("")) == 5
    assert await store.list("nothing/") == []


async def test_download_to_local_file(store: MediaStore, tmp_path: Path) -> None:
    await store.put("d/blob.webm", BLOB)
    out = await store.download_to("d/blob.webm", tmp_path / "work.webm")
    assert out.read_bytes() == BLOB
    assert [name for name in os.listdir(tmp_path) if name.startswith(".")] == []


@pytest.mark.parametrize("key", ["../etc/passwd", "/etc/passwd", "a/../../b", "a/./b", "a//b", "", "a\\b",
                                 ".tmp/x", "a/.hidden", "a/b/", "x\x00y", "a/..", "../../../../tmp/evil"])
async def test_unsafe_keys_rejected(store: MediaStore, key: str) -> None:
    with pytest.raises(InvalidMediaKey):
        await store.put(key, b"data")
    with pytest.raises(InvalidMediaKey):
        await store.get_bytes(key)
    with pytest.raises(InvalidMediaKey):
        await _collect(store.open_range(key, 0, None))


def test_invalid_key_is_a_400() -> None:
    with pytest.raises(InvalidMediaKey) as err:
        validate_key("../x")
    assert err.value.status == 400 and err.value.to_json()["error"] == "BadRequest"


# --- local-only guarantees -------------------------------------------------------------------


async def test_local_symlink_out_of_root_rejected(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path / "media")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (tmp_path / "media").mkdir()
    os.symlink(outside, tmp_path / "media" / "link")
    with pytest.raises(InvalidMediaKey):
        await store.get_bytes("link/secret")


async def test_local_failed_write_leaves_no_file(tmp_path: Path) -> None:
    """A writer that dies half-way leaves neither a half file under the key nor a temp file."""
    store = LocalMediaStore(tmp_path / "media")
    await store.put("rec/seg.webm", b"old complete content")

    async def dies() -> AsyncIterator[bytes]:
        yield b"new partial"
        raise OSError("disk unplugged")

    with pytest.raises(OSError, match="unplugged"):
        await store.put("rec/seg.webm", dies())
    assert await store.get_bytes("rec/seg.webm") == b"old complete content"

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            raise OSError("read error")

    with pytest.raises(OSError, match="read error"):
        await store.put("rec/new.webm", cast(IO[bytes], Broken()))
    assert not await store.exists("rec/new.webm")
    assert list((tmp_path / "media" / ".tmp").iterdir()) == []
    assert await store.list("") == ["rec/seg.webm"]
    # A writer killed outright (no exception handler ran) leaves a temp file; it is purged later.
    stale = tmp_path / "media" / ".tmp" / "dead.part"
    stale.write_bytes(b"half")
    os.utime(stale, (0, 0))
    assert await store.purge_temp(older_than_seconds=60) == 1
    assert not stale.exists()


async def test_s3_store_creates_its_bucket_and_keeps_content_type(moto_endpoint: str) -> None:
    store = make_s3(moto_endpoint)
    await store.put("x/a.webm", b"123", "video/webm")
    head = store._client.head_object(Bucket=store.bucket, Key="x/a.webm")
    assert head["ContentType"] == "video/webm"
    # A second store on the same (now existing) bucket works too.
    again = make_s3(moto_endpoint, bucket=store.bucket)
    assert await again.get_bytes("x/a.webm") == b"123"


def test_build_media_store_by_settings(tmp_path: Path, moto_endpoint: str) -> None:
    local = build_media_store(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalMediaStore) and local.root == (tmp_path / "media").resolve()
    s3 = build_media_store(Settings(data_dir=tmp_path, media_backend="s3", s3_endpoint_url=moto_endpoint,
                                    s3_bucket="cg-settings", s3_access_key_id="t", s3_secret_access_key="t"))
    assert isinstance(s3, S3MediaStore) and s3.bucket == "cg-settings"
