"""Fetching a named dataset's files: from the first mirror that answers, md5-checked, atomically.

Nothing half-done is ever left under a name the readers look for: a download goes to a hidden
temporary file in the cache root and is renamed into place only after its md5 matched; an
archive is extracted into a hidden temporary folder whose dataset folder is renamed into place
once extraction finished. A killed run leaves at most a `.nas-*` temporary behind, which no
reader mistakes for a dataset (and which is removed whenever the run ends any other way).
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from nas.errors import DataError
from supernets.progress import Progress

TIMEOUT_S = 60.0  # per connect or read; a stalled mirror counts as offline rather than hanging
CHUNK_BYTES = 1 << 20
# Some hosts (yann.lecun.com behind a CDN) answer Python's default agent with 403 Forbidden,
# which is why torchvision sends its own agent too.
USER_AGENT = "nas-platform (urllib)"
_OFFLINE = (urllib.error.URLError, http.client.HTTPException, OSError)  # OSError: timeouts, resets


@dataclass(frozen=True)
class Remote:
    """One file as a dataset's host serves it: its name, the md5 of its bytes, its mirrors."""

    filename: str
    md5: str
    mirrors: tuple[str, ...]  # base URLs, tried in order; the filename is appended

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(mirror + self.filename for mirror in self.mirrors)


def fetch(remote: Remote, dest: Path, *, dataset: str, scratch: Path, place: str) -> None:
    """Download `remote` to `dest` (md5-checked) through a temporary file in `scratch`.

    `dest`'s folder is created only once the file is verified, so a failed download leaves no
    dataset folder. `place` names what a user without network would put into that folder."""
    try:
        fd, name = tempfile.mkstemp(dir=scratch, prefix=".nas-download-")
    except OSError as error:  # a read-only cache serves what it holds, but cannot take more
        raise DataError(f"cannot write into {scratch} to download {dataset} ({error.strerror}); "
                        f"place {place} in {dest.parent}, or set $NAS_DATA to a writable "
                        f"folder") from None
    os.close(fd)
    tmp = Path(name)
    try:
        reasons = []
        for url in remote.urls:
            try:
                _download(url, tmp)
                break
            except _OFFLINE as error:
                reason = _one_line(str(getattr(error, "reason", error)))
                reasons += [reason] if reason not in reasons else []
        else:
            raise DataError(f"cannot download {dataset} from {' or '.join(remote.urls)} "
                            f"({'; '.join(reasons)}); place {place} in {dest.parent} "
                            f"(or set $NAS_DATA to a cache folder that has them)")
        got = md5_of(tmp)
        if got != remote.md5:
            raise DataError(f"download of {url} has md5 {got}, expected {remote.md5} (truncated or "
                            f"changed on the server); refused it, nothing was kept in {scratch}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def check_md5(path: Path, remote: Remote, dataset: str) -> None:
    """A file the user placed must be the one torchvision's checksum names, like a download."""
    got = md5_of(path)
    if got != remote.md5:
        raise DataError(f"{path} has md5 {got}, expected {remote.md5} (a truncated copy or not "
                        f"the {dataset} file); delete it to download it again")


def extract_tar(archive: Path, folder: str, root: Path) -> Path:
    """Extract `archive` and move its top-level `folder` to `root/folder`; returns that path."""
    if not hasattr(tarfile, "data_filter"):  # Python < 3.10.12 / 3.11.4
        raise DataError(f"extracting {archive} needs Python 3.10.12, 3.11.4 or newer (tarfile's "
                        f"safe 'data' filter); extract it yourself into {root}")
    target = root / folder
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=".nas-extract-"))
    try:
        print(f"extracting {archive.name} into {root}", file=sys.stderr, flush=True)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                # "data" refuses absolute paths, links out of the folder, devices and set-uid bits.
                tar.extractall(scratch, filter="data")
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DataError(f"cannot extract {archive}: {_one_line(str(error))}; delete it to "
                            f"download it again") from None
        if not (scratch / folder).is_dir():
            raise DataError(f"{archive} holds no {folder}/ folder; it is not the archive expected "
                            f"here, delete it to download it again")
        try:
            os.rename(scratch / folder, target)
        except OSError:
            if not target.is_dir():  # else another process (a DDP rank) finished first
                raise
        return target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def gunzip(src: Path, dest: Path) -> None:
    """Decompress `src` beside itself as `dest`, as torchvision does (it keeps the .gz too)."""
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=".nas-gunzip-")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(src, "rb") as packed:
            shutil.copyfileobj(packed, out, CHUNK_BYTES)
        os.replace(tmp, dest)
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot decompress {src}: {_one_line(str(error))}; delete it to "
                        f"download it again") from None
    finally:
        tmp.unlink(missing_ok=True)


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # a checksum against corruption, not security
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, dest: Path) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, dest.open("wb") as out:
        size = int(response.headers.get("Content-Length") or 0)
        shown = f"{size / 1e6:.1f} MB" if size else "size unknown"
        print(f"downloading {url} ({shown})", file=sys.stderr, flush=True)
        done_mb = 0
        with Progress(round(size / 1e6), desc=url.rsplit("/", 1)[-1], unit="MB") as bar:
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                out.write(chunk)
                done = out.tell() // 1_000_000
                bar.update(done - done_mb)
                done_mb = done


def _one_line(text: str) -> str:
    return " ".join(text.split())
