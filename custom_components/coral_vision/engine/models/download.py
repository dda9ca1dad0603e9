"""Fetch catalog models into the models folder: mirror first, verified, moved in atomically.

A file is streamed into a temporary file beside its destination, checked (size, sha256, the
TFLite identifier) and only then renamed into place, so a failed, interrupted or cancelled
download leaves nothing half-written and a retry starts over cleanly. Every transfer has a size
cap and a total deadline (see Deadline), so a server that trickles bytes cannot hold it for ever.
Files the catalog does not pin are pinned on first download in the folder's manifest (trust on
first use).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal
from urllib.parse import urlsplit

import aiohttp

from ..errors import DownloadError
from . import store
from .catalog import CatalogEntry, ModelFile, Variant, is_edgetpu_kind, variant_for, variant_name
from .flatbuffer import has_identifier

_LOGGER = logging.getLogger(__name__)

MIRROR_ENV = "CORAL_VISION_MIRROR"

# Bytes done so far and the total when known; called on the event loop.
type Progress = Callable[[int, int | None], None]

MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
_CHUNK = 256 * 1024
# The deadline below bounds the whole transfer; these only catch a dead connection sooner.
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)


@dataclass(frozen=True, slots=True)
class Deadline:
    """The time a whole transfer may take: `grace` seconds plus one per `min_rate` bytes.

    The bytes are the expected size when it is known and trusted (the catalog's), else those
    received so far: a server that trickles fails after about `grace` seconds, a slow but honest
    one finishes, and nothing takes longer than `limit`.
    """

    grace: float = 60.0
    min_rate: float = 64 * 1024  # bytes per second; a very slow link still delivers this
    limit: float = 3600.0

    def seconds(self, size: int) -> float:
        """The total time allowed for a transfer of `size` bytes."""
        return min(self.limit, self.grace + size / self.min_rate)


DEFAULT_DEADLINE = Deadline()


@dataclass(frozen=True, slots=True)
class LocalModel:
    """The local files of a catalog entry for one device kind."""

    entry_id: str
    variant: Variant
    model: Path
    labels: Path | None
    cpu_twin: Path | None  # the plain model when `model` is compiled: the CPU fallback runs it

    @property
    def files(self) -> tuple[Path, ...]:
        """Every local file this model needs, to mark them as in use."""
        return tuple(p for p in (self.model, self.labels, self.cpu_twin) if p is not None)


def mirror_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The mirror (folder or base URL) named by $CORAL_VISION_MIRROR, if set."""
    value = (os.environ if environ is None else environ).get(MIRROR_ENV, "").strip()
    return value or None


def is_url(location: str) -> bool:
    """Whether a mirror or source is an HTTP(S) URL rather than a folder."""
    return location.startswith(("http://", "https://"))


def files_for(entry: CatalogEntry, device_kind: str) -> tuple[ModelFile, ...]:
    """The files an entry needs on a device kind: model, labels and, on a TPU, the CPU twin."""
    model = variant_for(entry, device_kind)
    wanted = [model, entry.labels]
    if model is not entry.cpu and is_edgetpu_kind(device_kind):
        wanted.append(entry.cpu)
    unique: dict[str, ModelFile] = {}
    for file in wanted:
        if file is not None:
            unique.setdefault(file.path, file)
    return tuple(unique.values())


async def ensure_model(
    session: aiohttp.ClientSession,
    entry: CatalogEntry,
    device_kind: str,
    models_dir: Path,
    *,
    mirror: str | None = None,
    progress: Progress | None = None,
    deadline: Deadline = DEFAULT_DEADLINE,
) -> LocalModel:
    """Make the entry's files for `device_kind` present and verified; fetch what is missing."""
    model = variant_for(entry, device_kind)
    wanted = files_for(entry, device_kind)
    manifest = await asyncio.to_thread(store.read_manifest, models_dir)
    missing = []
    records = []
    for file in wanted:
        state = await asyncio.to_thread(_local_state, models_dir, file, manifest.get(file.path))
        if state is None:
            missing.append(file)
        elif isinstance(state, tuple):
            records.append(_record(file, state, entry, "local"))
    meter = _Meter(progress, {f.path: f.size for f in missing}, deadline)
    fetched: dict[str, tuple[str, int, str]] = {}
    if mirror:
        for file in missing:
            expected = _expected(file, manifest)
            result = await _from_mirror(session, mirror, file, models_dir, expected, meter)
            if result is not None:
                fetched[file.path] = result
    for url, group in _by_url(f for f in missing if f.path not in fetched).items():
        expected_group = {f.path: _expected(f, manifest) for f in group}
        fetched.update(await _from_upstream(session, url, group, models_dir, expected_group, meter))
    for file in missing:
        sha256, size, source = fetched[file.path]
        records.append(_record(file, (sha256, size), entry, source))
    if records:
        await _to_disk(store.record_files, models_dir, records)
    twin = entry.cpu if model is not entry.cpu else None
    return LocalModel(
        entry_id=entry.id,
        variant=variant_name(entry, model),
        model=models_dir / model.path,
        labels=models_dir / entry.labels.path if entry.labels else None,
        cpu_twin=models_dir / twin.path if twin else None,
    )


async def download_to_folder(
    session: aiohttp.ClientSession,
    url: str,
    folder: Path,
    *,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    deadline: Deadline = DEFAULT_DEADLINE,
) -> Path:
    """Stream a URL into a new hidden partial file in `folder`; the caller keeps or removes it."""
    meter = _Meter(None, {}, deadline)
    try:
        name = Path(urlsplit(url).path).name or "download"
    except ValueError:  # the request says why the address is bad
        name = "download"
    return await _stream(session, url, folder, meter, name, max_bytes=max_bytes)


@dataclass(frozen=True, slots=True)
class _Expected:
    sha256: str | None
    size: int | None


def _expected(file: ModelFile, manifest: Mapping[str, store.FileRecord]) -> _Expected:
    record = manifest.get(file.path)
    if file.sha256:
        return _Expected(file.sha256, file.size)
    if record is not None:
        return _Expected(record.sha256, record.size)  # trust on first use, enforced from then on
    return _Expected(None, file.size)


def _record(
    file: ModelFile, state: tuple[str, int], entry: CatalogEntry, source: str
) -> store.FileRecord:
    variant = "labels" if file == entry.labels else variant_name(entry, file)
    return store.FileRecord(
        path=file.path,
        sha256=state[0],
        size=state[1],
        source=file.url if source == "upstream" else source,
        variant=variant,
        entry=entry.id,
    )


def _local_state(
    models_dir: Path, file: ModelFile, record: store.FileRecord | None
) -> tuple[str, int] | Literal[True] | None:
    """True if present and known good, (sha256, size) if present and newly pinned, None if not."""
    path = models_dir / file.path
    try:
        size = path.stat().st_size
    except OSError:
        return None
    expected_sha = file.sha256 or (record.sha256 if record else None)
    expected_size = file.size or (record.size if record else None)
    if expected_size is not None and size != expected_size:
        _LOGGER.warning("%s has the wrong size; fetching it again", path)
        return None
    try:
        actual = store.sha256_file(path)
    except OSError:
        return None
    if expected_sha is not None and actual != expected_sha:
        _LOGGER.warning("%s does not match its sha256; fetching it again", path)
        return None
    if record is None or record.sha256 != actual:
        return (actual, size)
    return True


def _by_url(files: Iterable[ModelFile]) -> dict[str, list[ModelFile]]:
    groups: dict[str, list[ModelFile]] = {}
    for file in files:
        groups.setdefault(file.url, []).append(file)
    return groups


async def _from_mirror(
    session: aiohttp.ClientSession,
    mirror: str,
    file: ModelFile,
    models_dir: Path,
    expected: _Expected,
    meter: _Meter,
) -> tuple[str, int, str] | None:
    """Fetch a file from the mirror; None when the mirror lacks it or its copy is bad."""
    dest = models_dir / file.path
    try:
        if is_url(mirror):
            url = f"{mirror.rstrip('/')}/{file.path}"
            sha256, size = await _fetch_into(session, url, dest, expected, meter, file.path)
            return sha256, size, url
        source = await asyncio.to_thread(_mirror_file, Path(mirror), file)
        if source is None:
            return None
        sha256, size = await _to_disk(_copy_and_install, source, dest, expected)
        meter.expect(file.path, size)
        meter.advance(file.path, size)
        return sha256, size, str(source)
    except DownloadError as err:
        if err.reason == "http_status" and "404" in str(err):
            _LOGGER.debug("mirror %s has no %s", mirror, file.path)
        else:
            _LOGGER.warning("mirror %s failed for %s (%s); trying upstream", mirror, file.path, err)
        meter.reset(file.path)
        return None


def _mirror_file(mirror: Path, file: ModelFile) -> Path | None:
    # The catalog path first ("<mirror>/detection/.../detect.tflite"), then a flat mirror.
    for candidate in (mirror / file.path, mirror / file.name):
        if candidate.is_file():
            return candidate
    return None


async def _from_upstream(
    session: aiohttp.ClientSession,
    url: str,
    group: list[ModelFile],
    models_dir: Path,
    expected: Mapping[str, _Expected],
    meter: _Meter,
) -> dict[str, tuple[str, int, str]]:
    """Fetch every file of one upstream URL; a ZIP is downloaded once for all its members."""
    result: dict[str, tuple[str, int, str]] = {}
    plain = [f for f in group if f.member is None]
    members = [f for f in group if f.member is not None]
    for file in plain:
        dest = models_dir / file.path
        sha256, size = await _fetch_into(session, url, dest, expected[file.path], meter, file.path)
        result[file.path] = (sha256, size, "upstream")
    if members:
        key = members[0].path
        for other in members[1:]:
            meter.drop(other.path)  # one archive transfer carries every member
        archive = await _stream(session, url, models_dir, meter, key)
        try:
            for file in members:
                assert file.member is not None
                sha256, size = await _to_disk(
                    _extract_and_install,
                    archive,
                    file.member,
                    models_dir / file.path,
                    expected[file.path],
                    url,
                )
                result[file.path] = (sha256, size, "upstream")
        finally:
            store.discard(archive)
    return result


async def _fetch_into(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    expected: _Expected,
    meter: _Meter,
    key: str,
) -> tuple[str, int]:
    await _to_disk(dest.parent.mkdir, parents=True, exist_ok=True)
    part = await _stream(session, url, dest.parent, meter, key)
    try:
        return await _to_disk(_install, part, dest, expected, url)
    finally:
        store.discard(part)


async def _stream(
    session: aiohttp.ClientSession,
    url: str,
    folder: Path,
    meter: _Meter,
    key: str,
    *,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> Path:
    """Download `url` into a new partial file in `folder`; remove it on any failure."""
    await _to_disk(folder.mkdir, parents=True, exist_ok=True)
    fd, part = await _to_disk(store.part_file, folder, Path(key).name)
    handle = os.fdopen(fd, "wb")
    try:
        await _receive(session, url, handle, meter, key, max_bytes)
        await _to_disk(_close, handle)
    except BaseException:
        # Also on cancellation: nothing half-written may stay behind.
        handle.close()
        store.discard(part)
        meter.reset(key)
        raise
    return part


async def _receive(
    session: aiohttp.ClientSession,
    url: str,
    handle: IO[bytes],
    meter: _Meter,
    key: str,
    max_bytes: int,
) -> None:
    """Write the body of `url` to `handle` within the size cap and the meter's deadline."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    known = meter.known(key)
    deadline = meter.deadline
    try:
        async with asyncio.timeout_at(started + deadline.seconds(known)) as timer:
            async with session.get(url, timeout=_TIMEOUT, allow_redirects=True) as response:
                if response.status != 200:
                    raise DownloadError(
                        f"{url}: the server answered HTTP {response.status} "
                        f"{response.reason or ''}".rstrip(),
                        reason="http_status",
                        url=url,
                    )
                length = response.content_length
                if length is not None and length > max_bytes:
                    raise DownloadError(
                        f"{url}: {length} bytes is over the {max_bytes}-byte limit",
                        reason="too_large",
                        url=url,
                    )
                meter.expect(key, length)
                received = 0
                async for chunk in response.content.iter_chunked(_CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise DownloadError(
                            f"{url}: more than {max_bytes} bytes", reason="too_large", url=url
                        )
                    timer.reschedule(started + deadline.seconds(max(known, received)))
                    await _to_disk(handle.write, chunk)
                    meter.advance(key, len(chunk))
                if length is not None and received != length:
                    raise DownloadError(
                        f"{url}: the transfer ended after {received} of {length} bytes",
                        reason="incomplete",
                        url=url,
                    )
    except TimeoutError as err:
        # Ours (the whole transfer) or aiohttp's (a connection that went silent).
        why = "the download did not finish in time" if timer.expired() else "no data for too long"
        raise DownloadError(
            f"{url}: {why} ({loop.time() - started:.0f} s, {meter.done(key)} bytes received)",
            reason="timeout",
            url=url,
        ) from err
    except aiohttp.TooManyRedirects as err:
        raise DownloadError(
            f"{url}: too many redirects ({len(err.history)}), perhaps a redirect loop",
            reason="redirects",
            url=url,
        ) from err
    except aiohttp.InvalidURL as err:
        raise DownloadError(
            f"{url}: not a valid http(s) address ({err})", reason="invalid_url", url=url
        ) from err
    except aiohttp.ClientPayloadError as err:
        raise DownloadError(
            f"{url}: the transfer was cut short ({err})", reason="incomplete", url=url
        ) from err
    except aiohttp.ClientError as err:
        raise DownloadError(
            f"{url}: {err or type(err).__name__}", reason="network", url=url
        ) from err


def _close(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _hash_file(path: Path) -> tuple[str, int]:
    return store.sha256_file(path), path.stat().st_size


def _install(part: Path, dest: Path, expected: _Expected, source: str) -> tuple[str, int]:
    """Verify a complete partial file and rename it onto `dest`."""
    checked = _checked(part, dest, expected, source)
    os.replace(part, dest)
    return checked


def _checked(part: Path, dest: Path, expected: _Expected, source: str) -> tuple[str, int]:
    """The sha256 and size of a partial file for `dest`, verified against what is expected."""
    sha256, size = _hash_file(part)
    _verify(part, dest, sha256, size, expected, source)
    return sha256, size


def _verify(
    part: Path, dest: Path, sha256: str, size: int, expected: _Expected, source: str
) -> None:
    if expected.size is not None and size != expected.size:
        raise DownloadError(
            f"{source}: got {size} bytes for {dest.name}, expected {expected.size}",
            reason="size_mismatch",
            url=source,
        )
    if expected.sha256 is not None and sha256 != expected.sha256:
        raise DownloadError(
            f"{source}: {dest.name} has sha256 {sha256}, expected {expected.sha256}; "
            "the file differs from the one pinned by the catalog or on first download",
            reason="hash_mismatch",
            url=source,
        )
    if dest.suffix == ".tflite":
        with part.open("rb") as handle:
            head = handle.read(8)
        if not has_identifier(head):
            raise DownloadError(
                f"{source}: {dest.name} is not a TensorFlow Lite model (no TFL3 identifier)",
                reason="not_tflite",
                url=source,
            )


def _copy_and_install(source: Path, dest: Path, expected: _Expected) -> tuple[str, int]:
    def copy(out: IO[bytes]) -> None:
        with source.open("rb") as data:
            shutil.copyfileobj(data, out, _CHUNK)

    return store.write_atomically(
        dest, copy, lambda part: _checked(part, dest, expected, str(source))
    )


def _extract_and_install(
    archive: Path, member: str, dest: Path, expected: _Expected, url: str
) -> tuple[str, int]:
    """Extract one ZIP member next to `dest`, verify it and rename it into place."""
    return store.write_atomically(
        dest,
        lambda out: _extract_member(archive, member, out, url),
        lambda part: _checked(part, dest, expected, url),
    )


def _extract_member(archive: Path, member: str, out: IO[bytes], url: str) -> None:
    """Copy one ZIP member to `out`, within the download size cap."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            info = _find_member(bundle, member)
            if info is None:
                raise DownloadError(
                    f"{url}: the archive has no {member}", reason="archive", url=url
                )
            if info.file_size > MAX_DOWNLOAD_BYTES:
                raise DownloadError(f"{url}: {member} is too large", reason="too_large", url=url)
            written = 0
            with bundle.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    written += len(chunk)
                    if written > MAX_DOWNLOAD_BYTES:
                        raise DownloadError(
                            f"{url}: {member} is too large", reason="too_large", url=url
                        )
                    out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise DownloadError(
            f"{url}: not a readable ZIP archive ({err})", reason="archive", url=url
        ) from err


def _find_member(bundle: zipfile.ZipFile, member: str) -> zipfile.ZipInfo | None:
    infos = [i for i in bundle.infolist() if not i.is_dir()]
    for info in infos:
        if info.filename == member:
            return info
    # Archives often wrap their files in a folder: accept a unique match by file name.
    matches = [i for i in infos if Path(i.filename).name == Path(member).name]
    return matches[0] if len(matches) == 1 else None


async def _to_disk[**P, R](func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run blocking disk work in a thread; a disk failure becomes DownloadError("storage")."""
    try:
        return await asyncio.to_thread(func, *args, **kwargs)
    except DownloadError:
        raise
    except OSError as err:
        raise DownloadError(f"cannot write the models folder: {err}", reason="storage") from err


class _Meter:
    """Adds up bytes over every transfer of one call and reports them to a progress callback."""

    def __init__(
        self, callback: Progress | None, sizes: Mapping[str, int | None], deadline: Deadline
    ) -> None:
        self._callback = callback
        self._totals: dict[str, int | None] = dict(sizes)
        self._known = {key: size for key, size in sizes.items() if size is not None}
        self._done: dict[str, int] = {}
        self.deadline = deadline

    def known(self, key: str) -> int:
        """The size the catalog promises for a transfer (0 if none): its deadline is set by it."""
        return self._known.get(key, 0)

    def done(self, key: str) -> int:
        """Bytes received so far by a transfer."""
        return self._done.get(key, 0)

    def expect(self, key: str, size: int | None) -> None:
        """A transfer learned its size (Content-Length)."""
        if size is not None:
            self._totals[key] = size
        self._report()

    def advance(self, key: str, count: int) -> None:
        """Bytes arrived."""
        self._done[key] = self._done.get(key, 0) + count
        self._report()

    def drop(self, key: str) -> None:
        """A file will not be transferred on its own."""
        self._totals.pop(key, None)
        self._done.pop(key, None)

    def reset(self, key: str) -> None:
        """A transfer failed and will start over (or be given up)."""
        self._done.pop(key, None)

    def _report(self) -> None:
        if self._callback is None:
            return
        totals = list(self._totals.values())
        total = None if any(t is None for t in totals) else sum(t for t in totals if t is not None)
        self._callback(sum(self._done.values()), total)
