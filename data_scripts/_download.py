"""Resumable, atomic, checksummed HTTP downloads for the equivox data scripts.

* data goes to ``<dest>.part`` first; an interrupted download resumes with an
  HTTP ``Range`` request; the file is renamed to ``dest`` only after the
  checksum (md5 or sha256, when known) matches,
* network failures (offline, DNS, timeout, HTTP errors) raise
  :class:`DownloadError` with the URL, the reason and what to do by hand --
  never an endless hang (every socket operation has a timeout),
* ``opener`` is injectable so tests can mock the network.
"""
from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

DEFAULT_TIMEOUT = 30.0  # seconds per socket operation
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """Download failed (offline, HTTP error, checksum mismatch)."""


def data_root() -> Path:
    """Where downloads go: ``$EQUIVOX_DATA_DIR``, else ``$EQUIVOX_CACHE_DIR/datasets``,
    else ``~/.cache/equivox/datasets``."""
    if os.environ.get("EQUIVOX_DATA_DIR"):
        return Path(os.environ["EQUIVOX_DATA_DIR"])
    if os.environ.get("EQUIVOX_CACHE_DIR"):
        return Path(os.environ["EQUIVOX_CACHE_DIR"]) / "datasets"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "equivox" / "datasets"


def file_hash(path: str | os.PathLike, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, md5: str | None = None, sha256: str | None = None) -> None:
    for algo, want in (("md5", md5), ("sha256", sha256)):
        if want:
            got = file_hash(path, algo)
            if got.lower() != want.lower():
                raise DownloadError(
                    f"{algo} mismatch for {path}: expected {want}, got {got}. The file is "
                    f"corrupt or the upstream file changed; delete it and retry, or verify "
                    f"the checksum published by the dataset authors.")


def _manual_hint(url: str, dest: Path, md5, sha256) -> str:
    check = ""
    if md5 or sha256:
        check = f"(expected {'md5 ' + md5 if md5 else 'sha256 ' + sha256})\n"
    return (f"Are you offline? Download the file on another machine:\n    {url}\n"
            f"copy it to\n    {dest}\n{check}"
            f"and re-run this command (a complete file already in place is not downloaded again).")


def download(url: str, dest: str | os.PathLike, *, md5: str | None = None,
             sha256: str | None = None, timeout: float = DEFAULT_TIMEOUT, retries: int = 2,
             opener: Callable | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (resumable, atomic, checksummed). Returns ``dest``.

    If ``dest`` already exists and matches the checksum it is reused.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        verify(dest, md5, sha256)
        return dest
    opener = opener or urllib.request.urlopen
    part = dest.with_name(dest.name + ".part")
    last_err: Exception | None = None
    done = False
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(url, headers={"User-Agent": "equivox-data-scripts"})
        if have:
            req.add_header("Range", f"bytes={have}-")
        try:
            with opener(req, timeout=timeout) as resp:
                status = getattr(resp, "status", None) or resp.getcode()
                if have and status != 206:  # server ignored Range: start again
                    have = 0
                total = resp.headers.get("Content-Length")
                total = int(total) + have if total is not None else None
                _stream(resp, part, have, total, progress, url)
            done = True
            break
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # range not satisfiable: .part is already complete
                done = True
                break
            last_err = e
            if e.code < 500:  # client errors do not get better by retrying
                break
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as e:
            last_err = e
        if attempt < retries:
            time.sleep(min(2.0 * (attempt + 1), 5.0))
    if not done:
        reason = getattr(last_err, "reason", None) or last_err
        raise DownloadError(f"could not download {url}: {reason}\n"
                            + _manual_hint(url, dest, md5, sha256)) from last_err
    try:
        verify(part, md5, sha256)
    except DownloadError:
        part.unlink(missing_ok=True)  # do not resume from corrupt data
        raise
    os.replace(part, dest)
    return dest


def _stream(resp, part: Path, have: int, total: int | None, progress: bool, url: str) -> None:
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True,
                       desc=Path(url.split("?")[0]).name, file=sys.stderr)
        except ImportError:
            bar = None
    with open(part, "ab" if have else "wb") as f:
        while True:
            block = resp.read(CHUNK)
            if not block:
                break
            f.write(block)
            if bar is not None:
                bar.update(len(block))
    if bar is not None:
        bar.close()
    if total is not None and part.stat().st_size < total:
        raise ConnectionError(f"connection closed early ({part.stat().st_size} of {total} bytes)")
