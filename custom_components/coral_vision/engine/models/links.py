"""Model links: a user's own model fetched from a URL into a file, within a size and time budget.

Supported links are direct .tflite URLs, tfhub.dev model pages (``?lite-format=tflite`` is
added), Kaggle model pages ``kaggle.com/models/<owner>/<model>/<framework>/<variation>/<version>``
(fetched through Kaggle's public download API, a .tar.gz holding the .tflite) and GitHub ``blob``
links. The body streams into a hidden partial file (never into memory) under a total deadline and
the size cap; an archive is unpacked, bounded, into another. The caller checks the model and then
keeps the file or deletes it: nothing here decides that a download is a model.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import tarfile
import zlib
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ..errors import DownloadError, ModelError
from . import store
from .download import MAX_DOWNLOAD_BYTES, Deadline, download_to_folder

# The download, and the model unpacked from an archive, may each be this large.
MAX_LINK_BYTES = MAX_DOWNLOAD_BYTES
# Everything a .tar.gz may decompress to (its other members included): a gzip bomb stops here.
MAX_ARCHIVE_BYTES = 2 * MAX_LINK_BYTES
MAX_ARCHIVE_MEMBERS = 1000
# The config flow waits on a model link: give it less than the catalog's hour.
LINK_DEADLINE = Deadline(limit=600.0)

_CHUNK = 256 * 1024
# Extended tar headers (pax, GNU long names) are read whole by tarfile, with no seek in between
# (member data is always read after a seek): real ones are small.
_MAX_HEADER_BYTES = 2 * 1024 * 1024


def resolve_model_url(url: str) -> str:
    """A direct download URL for a model page link (TF Hub, Kaggle Models, GitHub blob)."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        _ = parts.port  # checked when read
    except ValueError as err:  # "http://[::1" and other malformed addresses
        raise _invalid(url, str(err)) from err
    if parts.scheme not in {"http", "https"} or not host:
        raise _invalid(url, "only http:// and https:// links can be downloaded")
    path = parts.path.rstrip("/")
    segments = [s for s in path.split("/") if s]
    if host in {"tfhub.dev", "www.tfhub.dev"}:
        if "lite-format=" in parts.query:
            return text
        query = f"{parts.query}&lite-format=tflite" if parts.query else "lite-format=tflite"
        return urlunsplit((parts.scheme, parts.netloc, path, query, ""))
    if host in {"kaggle.com", "www.kaggle.com"} and segments[:1] == ["models"]:
        if len(segments) != 6:
            raise _invalid(
                url,
                "a Kaggle model link must name owner/model/framework/variation/version, "
                "e.g. https://www.kaggle.com/models/google/mobilenet-v2/tfLite/...",
            )
        return "https://www.kaggle.com/api/v1/models/" + "/".join(segments[1:]) + "/download"
    if host == "github.com" and len(segments) > 4 and segments[2] == "blob":
        segments[2] = "raw"
        return urlunsplit((parts.scheme, parts.netloc, "/" + "/".join(segments), "", ""))
    return text


async def fetch_model(
    session: aiohttp.ClientSession,
    url: str,
    folder: Path,
    *,
    deadline: Deadline | None = None,
    max_bytes: int | None = None,
) -> Path:
    """Download a model link into a new hidden partial file in `folder`, unpacked; its path.

    DownloadError when the transfer fails, ModelError when an archive holds no single model;
    either way nothing is left in `folder`. The caller removes the file it gets. The deadline
    and the size cap default to LINK_DEADLINE and MAX_LINK_BYTES, read at each call.
    """
    resolved = resolve_model_url(url)
    max_bytes = max_bytes or MAX_LINK_BYTES
    part = await download_to_folder(
        session, resolved, folder, max_bytes=max_bytes, deadline=deadline or LINK_DEADLINE
    )
    try:
        return await asyncio.to_thread(unpack_model, part, max_bytes=max_bytes)
    except BaseException:
        store.discard(part)
        raise


def unpack_model(path: Path, *, max_bytes: int = MAX_LINK_BYTES) -> Path:
    """The .tflite of a (gzipped) tar file as a new file beside it (the archive is removed).

    A file that is no archive is returned as it is.
    """
    with path.open("rb") as raw:
        head = raw.read(512)
        raw.seek(0)
        gzipped = head[:2] == b"\x1f\x8b"
        if not gzipped and head[257:262] != b"ustar":
            return path
        fd, model = store.part_file(path.parent, f"{path.stem}.tflite")
        try:
            with os.fdopen(fd, "wb") as out:
                _extract_one(gzip.GzipFile(fileobj=raw) if gzipped else raw, out, max_bytes)
        except BaseException:
            store.discard(model)
            raise
    store.discard(path)
    return model


def _extract_one(source: io.BufferedIOBase, out: IO[bytes], max_bytes: int) -> None:
    """Copy the archive's only .tflite member to `out`, reading a bounded amount in all."""
    found = 0
    try:
        with tarfile.open(fileobj=_Bounded(source), mode="r:") as archive:
            for count, member in enumerate(iter(archive.next, None), start=1):
                if count > MAX_ARCHIVE_MEMBERS:
                    raise ModelError(f"the archive has more than {MAX_ARCHIVE_MEMBERS} entries")
                if not (member.isfile() and member.name.endswith(".tflite")):
                    continue
                found += 1
                if found > 1:
                    raise ModelError("the archive holds more than one .tflite file")
                if member.size > max_bytes:
                    raise ModelError(f"the model in the archive is over {max_bytes} bytes")
                handle = archive.extractfile(member)
                if handle is None:  # pragma: no cover - a regular file always has a handle
                    raise ModelError("the model in the archive cannot be read")
                while chunk := handle.read(_CHUNK):
                    out.write(chunk)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise ModelError(f"not a readable model archive: {err}") from err
    if not found:
        raise ModelError("the archive holds no .tflite file")


class _Bounded(io.RawIOBase):
    """A read-only view of a (decompressing) stream that refuses to do more than the cap."""

    def __init__(self, inner: io.BufferedIOBase) -> None:
        self._inner = inner
        self._work = 0
        self._unbroken = 0  # bytes read since the last seek: headers

    def readable(self) -> bool:
        """Always readable."""
        return True

    def seekable(self) -> bool:
        """Seeks are counted as the reads they cost a decompressor."""
        return True

    def read(self, size: int = -1) -> bytes:
        """Read at most `size` bytes; reading the whole stream is refused."""
        if size < 0:
            raise ModelError("the archive cannot be read whole")
        self._unbroken += size
        if self._unbroken > _MAX_HEADER_BYTES:
            raise ModelError("the archive has an oversized header")
        self._spend(size)
        return self._inner.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move within the stream; a decompressor reads what it skips, so it counts."""
        here = self._inner.tell()
        target = {io.SEEK_SET: offset, io.SEEK_CUR: here + offset}.get(whence)
        if target is None:
            raise OSError("an archive is never read from its end")
        # Backwards, a decompressor starts over from the beginning.
        self._spend(target - here if target >= here else target)
        self._unbroken = 0
        return self._inner.seek(target)

    def tell(self) -> int:
        """The position in the (decompressed) stream."""
        return self._inner.tell()

    def _spend(self, count: int) -> None:
        self._work += count
        if self._work > MAX_ARCHIVE_BYTES:
            raise ModelError(
                f"the archive unpacks to more than {MAX_ARCHIVE_BYTES} bytes (a gzip bomb?)"
            )


def _invalid(url: str, why: str) -> DownloadError:
    return DownloadError(f"{url.strip()!r} is not a usable model link: {why}", reason="invalid_url")
