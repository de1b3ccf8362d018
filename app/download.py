"""``earmark download speech-commands``: fetch, verify and safely extract the official archive.

* Resume: bytes go to ``<archive>.part``; a re-run asks the server for the rest with an HTTP
  ``Range`` request (and starts over when the server does not honour it).
* Integrity: the size must match the server's ``Content-Length``/``Content-Range``; a SHA-256
  is checked when one is given (``--sha256``) or known for the version; and the gzip CRC of
  every member is checked while extracting. The computed SHA-256 is returned (and written next
  to the archive) so it can be pinned next time.
* Safe extraction: only regular files and folders; no absolute paths, no member escaping the
  target, no symlinks, hard links or devices. A hostile archive leaves nothing behind.

Only ``urllib`` is used: no new dependencies.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from app.errors import EarmarkError
from app.pipeline.common import Progress

log = logging.getLogger(__name__)

BASE_URL = "http://download.tensorflow.org/data"
VERSIONS = ("v0.01", "v0.02")
# SHA-256 of the official archives, where known. None: not pinned here (the size, the gzip CRCs
# and an optional --sha256 still verify the download).
KNOWN_SHA256: dict[str, str | None] = {}  # archive file name -> SHA-256; none pinned yet
CHUNK = 1 << 20
TIMEOUT_S = 60

# progress(stage, done, total) (app.pipeline.common.Progress): stage "downloading" (bytes) or
# "extracting" (members; total 0 = unknown)


@dataclass
class DownloadResult:
    """Where the data set landed and how it was verified."""

    folder: Path  # the extracted data set, ready for `earmark ingest`
    archive: Path
    sha256: str
    verified_by: list[str]  # e.g. ["size", "sha256", "gzip-crc"]
    resumed_from: int  # bytes already on disk when this download started (0: fresh)
    downloaded: int  # bytes fetched by this call


def archive_name(version: str, test_set: bool = False) -> str:
    """File name of the official training archive of ``version`` (or of its separate test-set archive)."""
    if version not in VERSIONS:
        raise EarmarkError(f"unknown Speech Commands version {version!r}", hint=f"use one of: {', '.join(VERSIONS)}")
    return f"speech_commands{'_test_set' if test_set else ''}_{version}.tar.gz"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, part: Path, progress: Progress) -> tuple[int, int, int | None]:
    """Download ``url`` into ``part``, resuming it. Returns (resumed_from, downloaded, expected_total)."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "earmark", "Accept-Encoding": "identity"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)  # noqa: S310 - http(s) URL built above
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part may already be complete
            m = re.search(r"/(\d+)", exc.headers.get("Content-Range", "") or "")
            if m and int(m.group(1)) == have:
                return have, 0, have
            part.unlink()
            return _fetch(url, part, progress)
        raise EarmarkError(f"the server refused the download ({exc.code} {exc.reason})", detail=url,
                           hint="check --base-url and --version; re-run later to resume") from None
    except (urllib.error.URLError, OSError) as exc:
        raise EarmarkError(f"could not reach {url}", detail=str(getattr(exc, "reason", exc)),
                           hint="check the network; re-running resumes where this stopped") from None
    with resp:
        status = resp.status
        length = resp.headers.get("Content-Length")
        start = 0
        if status == 206:
            m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                raise EarmarkError("the server answered the resume with the wrong byte range",
                                   detail=resp.headers.get("Content-Range", ""), hint=f"delete {part} and re-run")
            start = have
            total = int(m.group(3)) if m.group(3) != "*" else None
        else:
            if have:
                log.info("the server ignored the Range request; starting the download over")
            total = int(length) if length is not None else None
        resumed_from = start
        mode = "ab" if start else "wb"
        done = start
        progress("downloading", done, total or 0)
        with open(part, mode) as fh:
            try:
                while block := resp.read(CHUNK):
                    fh.write(block)
                    done += len(block)
                    progress("downloading", done, total or 0)
            except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
                raise EarmarkError("the download was interrupted", detail=str(exc),
                                   hint="re-run the same command to resume it") from None
    return resumed_from, done - start, total


def _check_member(member: tarfile.TarInfo, dest: Path) -> Path | None:
    """Target path of a safe member (None to skip, e.g. '.'); raises on anything unsafe."""
    name = member.name
    if member.issym() or member.islnk():
        raise EarmarkError("the archive contains a link, which earmark refuses to extract",
                           detail=f"{name} -> {member.linkname}", hint="use the official archive")
    if not (member.isfile() or member.isdir()):
        raise EarmarkError("the archive contains a device, FIFO or other special file", detail=name,
                           hint="use the official archive")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise EarmarkError("the archive contains an absolute path", detail=name, hint="use the official archive")
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".")]
    if ".." in parts:
        raise EarmarkError("the archive contains a path that escapes the target folder", detail=name,
                           hint="use the official archive")
    if not parts:
        return None
    target = dest.joinpath(*parts)
    if not target.resolve().is_relative_to(dest.resolve()):
        raise EarmarkError("the archive contains a path that escapes the target folder", detail=name,
                           hint="use the official archive")
    return target


def safe_extract(archive: Path, dest: Path, progress: Progress | None = None) -> int:
    """Extract a .tar.gz into ``dest`` (which must not exist), all or nothing. Returns the file count."""
    progress = progress or (lambda stage, done, total: None)
    tmp = dest.parent / f".{dest.name}.extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                target = _check_member(member, tmp)
                if target is None:
                    continue
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
                os.chmod(target, 0o644)
                n += 1
                if n % 500 == 0:
                    progress("extracting", n, 0)
            # Read to the end of the compressed stream so gzip checks its CRC and length trailer.
            while tar.fileobj.read(CHUNK):
                pass
        progress("extracting", n, n)
        tmp.rename(dest)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise EarmarkError("the archive is damaged and could not be extracted", detail=f"{archive}: {exc}",
                           hint=f"delete {archive} and download it again") from None
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise EarmarkError("could not write the extracted files", detail=f"{dest}: {exc.strerror or exc}",
                           hint=f"check the free space and permissions of {dest.parent}, then run again") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return n


def download_speech_commands(version: str = "v0.02", to_dir: str | Path = "data", base_url: str = BASE_URL,
                             progress: Progress | None = None, sha256: str | None = None,
                             test_set: bool = False) -> DownloadResult:
    """Download the official Speech Commands ``version`` archive into ``to_dir`` and extract it.

    Resumes a partial ``.part`` file, verifies size / SHA-256 / gzip CRCs, and extracts to
    ``to_dir/speech_commands_<version>`` (returned in ``DownloadResult.folder``). ``test_set``
    fetches the official 12-class test-set archive instead (``speech_commands_test_set_<version>``).
    """
    progress = progress or (lambda stage, done, total: None)
    name = archive_name(version, test_set)
    to_dir = Path(to_dir).expanduser().resolve()
    to_dir.mkdir(parents=True, exist_ok=True)
    archive, part = to_dir / name, to_dir / f"{name}.part"
    folder = to_dir / name.removesuffix(".tar.gz")
    expected_sha = (sha256 or KNOWN_SHA256.get(name) or "").strip().lower() or None
    if expected_sha and not re.fullmatch(r"[0-9a-f]{64}", expected_sha):
        raise EarmarkError("--sha256 must be 64 hexadecimal digits", detail=expected_sha)
    verified: list[str] = []
    resumed_from = downloaded = 0
    if not archive.exists():
        url = f"{base_url.rstrip('/')}/{name}"
        log.info("downloading %s", url)
        resumed_from, downloaded, total = _fetch(url, part, progress)
        size = part.stat().st_size
        if total is not None:
            if size != total:
                raise EarmarkError("the download is incomplete", detail=f"{size} of {total} bytes",
                                   hint="re-run the same command to resume it")
            verified.append("size")
        digest = _sha256(part)
        if expected_sha and digest != expected_sha:
            part.unlink()
            raise EarmarkError("the downloaded archive does not match its checksum",
                               detail=f"SHA-256 {digest}, expected {expected_sha}",
                               hint="the damaged file was deleted; run the command again to download it afresh")
        part.rename(archive)
    else:
        digest = _sha256(archive)
        if expected_sha and digest != expected_sha:
            raise EarmarkError("the archive on disk does not match its checksum", detail=f"{archive}: SHA-256 "
                               f"{digest}, expected {expected_sha}", hint=f"delete {archive} and run again")
    if expected_sha:
        verified.append("sha256")
    (to_dir / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    if not folder.exists():
        safe_extract(archive, folder, progress)
        verified.append("gzip-crc")
    return DownloadResult(folder, archive, digest, verified, resumed_from, downloaded)
