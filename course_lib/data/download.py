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
that a loader could mistake for data.

`default_data_dir` is where every loader looks: $COURSE_DATA_DIR, else the repository's
`data/` folder.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm


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
    fd, part = tempfile.mkstemp(prefix=f".{target.name}-", suffix=".part", dir=target.parent)
    os.close(fd)
    part = Path(part)
    try:
        _fetch(url, part, target.name, offline_hint, timeout)
        if md5 is not None and (actual := file_digest(part, "md5")) != md5:
            raise RuntimeError(
                f"checksum mismatch for {target.name}: expected md5 {md5}, got {actual}. The "
                "download is corrupt or not the official release; nothing was kept. Try "
                "again, or put a copy you trust there yourself.")
        if check is not None:
            check(part)
        part.chmod(0o644)  # mkstemp makes it private; the data is not
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    return target


def _fetch(url: str, path: Path, name: str, offline_hint: str, timeout: float) -> None:
    """Stream `url` into `path`, with a progress bar when the size is known."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as out:
            size = response.headers.get("Content-Length")
            with tqdm(total=int(size) if size else None, unit="B", unit_scale=True, desc=name,
                      disable=not size, leave=False) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as error:  # URLError, HTTPError and timeouts are all OSErrors
        reason = getattr(error, "reason", error)
        raise RuntimeError(f"could not download {url}: {reason}. {offline_hint}".strip()) from error


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file ("md5" or "sha256"), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
