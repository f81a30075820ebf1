"""The one download function of the course's data loaders, and where data lives.

`download_file` streams a URL into a file with a progress bar and makes the file appear only
once it is whole and verified:

1. the bytes go to a temporary `.part` file beside the target (same folder, so the final
   rename is atomic: `os.replace` on one file system);
2. the MD5 is compared with the published one where it is known (GroupLens publishes MD5s),
   and an optional `check(path)` runs (e.g. "the gzip stream decompresses to the end");
3. only then is the `.part` file renamed to the target.

Any failure (no network, a cut-off transfer, a wrong checksum) deletes the `.part` file and
raises RuntimeError, so a later call simply starts again: restartable, never a half file
that a loader could mistake for data. A transfer is cut off when fewer bytes arrive than the
server's Content-Length announced (the end of the stream looks like the end of the file
otherwise), which is checked even where no checksum is known.

A killed process cannot delete its `.part` file; the next call for the same target does
(`remove_stale_parts`). A live download holds a lock on its `.part` file (`flock`), so a
second process downloading the same file at the same time never deletes the first one's.

`default_data_dir` is where every loader looks: $COURSE_DATA_DIR, else the repository's
`data/` folder.
"""
from __future__ import annotations

import glob
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.request
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from tqdm.auto import tqdm

try:
    import fcntl
except ImportError:      # Windows: no flock, but a file a live download holds cannot be deleted
    fcntl = None


def default_data_dir() -> Path:
    """$COURSE_DATA_DIR when set, else the `data/` folder at the repository root."""
    if os.environ.get("COURSE_DATA_DIR"):
        return Path(os.environ["COURSE_DATA_DIR"])
    return Path(__file__).resolve().parents[2] / "data"


def download_file(url: str, target: str | Path, *, md5: str | None = None,
                  check: Callable[[Path], None] | None = None, offline_hint: str = "",
                  timeout: float = 60) -> Path:
    """Download `url` to `target` atomically (see the module docstring) and return `target`.

    md5: the published checksum of the whole file, or None where none is published (then
    only `check` can tell a good file from a bad one). check(path) raises on a bad file.
    offline_hint: appended to the error when the URL cannot be reached, to say which file to
    put where by hand.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}-"
    remove_stale_parts(target.parent, prefix)
    fd, part = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=target.parent)
    part = Path(part)
    try:
        with os.fdopen(fd, "wb") as out, claimed(part):
            _fetch(url, out, target.name, offline_hint, timeout)
            out.flush()
            _verify(part, target.name, md5, check)
        part.chmod(0o644)  # mkstemp makes it private; the data is not
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    return target


def _fetch(url: str, out: BinaryIO, name: str, offline_hint: str, timeout: float) -> None:
    """Stream `url` into `out`, with a progress bar when the size is known; a transfer that
    ends before the announced Content-Length is an error."""
    received, size = 0, None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            size = _content_length(response)
            with tqdm(total=size, unit="B", unit_scale=True, desc=name, disable=not size,
                      leave=False) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as error:  # URLError, HTTPError, timeouts
        reason = getattr(error, "reason", error)
        raise RuntimeError(f"could not download {url}: {reason}. {offline_hint}".strip()) from error
    if size is not None and received != size:
        raise RuntimeError(f"the download of {url} was cut off: {received:,} of {size:,} bytes "
                           f"arrived, and nothing was kept. Try again. {offline_hint}".strip())


def _content_length(response) -> int | None:
    """The size the server announced, or None when it announced none (or nonsense)."""
    size = response.headers.get("Content-Length")
    return int(size) if size is not None and size.strip().isdigit() else None


def _verify(part: Path, name: str, md5: str | None, check: Callable[[Path], None] | None):
    if md5 is not None and (actual := file_digest(part, "md5")) != md5:
        raise RuntimeError(
            f"checksum mismatch for {name}: expected md5 {md5}, got {actual}. The "
            "download is corrupt or not the official release; nothing was kept. Try "
            "again, or put a copy you trust there yourself.")
    if check is not None:
        check(part)


# --- what killed downloads leave behind --------------------------------------------------------

@contextmanager
def claimed(path: Path) -> Iterator[None]:
    """Hold the lock of `path` (a `.part` file or folder) while a download works in it, so
    that `remove_stale_parts` in another process leaves it alone. The lock dies with the
    process, so a killed download's `.part` is free to delete."""
    if fcntl is None:
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        with suppress(OSError):            # a file system without locks: go on unlocked
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_stale_parts(folder: Path, prefix: str) -> None:
    """Delete the `{prefix}*.part` files and folders in `folder` that killed downloads left:
    every one whose lock no live download holds (`claimed`)."""
    for path in Path(folder).glob(glob.escape(prefix) + "*.part"):
        with suppress(OSError):            # held by a live download, or gone already
            if fcntl is None:              # Windows: only a file nobody has open can go
                path.unlink()
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            finally:
                os.close(fd)


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file ("md5" or "sha256"), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
