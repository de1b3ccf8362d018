"""app.download against a small archive served from a local HTTP server (never the internet)."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.download import download_speech_commands, safe_extract
from app.errors import EarmarkError
from tests.conftest import tone
from tests.ingest_helpers import write_wav_fast

NAME = "speech_commands_v0.02.tar.gz"


class _Server:
    """Serves ``files`` (path -> bytes) with HTTP Range support; knobs for misbehaving."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.ranges: list[str | None] = []
        self.ignore_range = False
        self.cut_after: int | None = None  # close the connection after this many body bytes, once
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                body = outer.files.get(self.path)
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                if body is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m and not outer.ignore_range:
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                payload = body[start:]
                if outer.cut_after is not None:
                    payload, outer.cut_after = payload[:outer.cut_after], None
                    self.wfile.write(payload)
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


def _wav_bytes(tmp_path: Path, seconds: float, freq: float) -> bytes:
    return write_wav_fast(tmp_path / f"w{freq}.wav", tone(seconds, freq=freq)).read_bytes()


def _archive(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def _good_archive(tmp_path: Path) -> tuple[bytes, dict[str, bytes]]:
    files = {
        "yes/0a7c2a8d_nohash_0.wav": _wav_bytes(tmp_path, 1.0, 440),
        "no/1b4c9b89_nohash_0.wav": _wav_bytes(tmp_path, 0.8, 330),
        "_background_noise_/white_noise.wav": _wav_bytes(tmp_path, 2.0, 100),
        "validation_list.txt": b"no/1b4c9b89_nohash_0.wav\n",
        "testing_list.txt": b"",
    }
    members = [(tarfile.TarInfo("."), None)]
    members[0][0].type = tarfile.DIRTYPE
    members += [(tarfile.TarInfo(f"./{k}"), v) for k, v in files.items()]
    return _archive(members), files


def test_download_fetches_verifies_and_extracts(server, tmp_path):
    data, files = _good_archive(tmp_path)
    server.files[f"/data/{NAME}"] = data
    sha = hashlib.sha256(data).hexdigest()
    res = download_speech_commands("v0.02", tmp_path / "dl", base_url=server.base_url, sha256=sha)
    assert res.folder == (tmp_path / "dl" / "speech_commands_v0.02").resolve()
    for rel, content in files.items():
        assert (res.folder / rel).read_bytes() == content
    assert res.sha256 == sha and res.verified_by == ["size", "sha256", "gzip-crc"]
    assert res.resumed_from == 0 and res.downloaded == len(data)
    assert not (tmp_path / "dl" / f"{NAME}.part").exists() and (tmp_path / "dl" / NAME).exists()
    assert (tmp_path / "dl" / f"{NAME}.sha256").read_text().startswith(sha)
    # a second call finds the archive and the folder and downloads nothing
    again = download_speech_commands("v0.02", tmp_path / "dl", base_url=server.base_url, sha256=sha)
    assert again.downloaded == 0 and len(server.ranges) == 1


def test_download_checksum_mismatch_is_refused(server, tmp_path):
    data, _ = _good_archive(tmp_path)
    server.files[f"/data/{NAME}"] = data
    with pytest.raises(EarmarkError) as err:
        download_speech_commands("v0.02", tmp_path / "dl", base_url=server.base_url, sha256="0" * 64)
    assert "checksum" in err.value.title and hashlib.sha256(data).hexdigest() in err.value.detail
    assert list((tmp_path / "dl").iterdir()) == []  # the damaged file is gone, nothing was extracted
    res = download_speech_commands("v0.02", tmp_path / "dl", base_url=server.base_url,
                                   sha256=hashlib.sha256(data).hexdigest())
    assert "sha256" in res.verified_by


def test_download_resumes_a_partial_file_with_range(server, tmp_path):
    data, files = _good_archive(tmp_path)
    server.files[f"/data/{NAME}"] = data
    (tmp_path / "dl").mkdir()
    half = len(data) // 2
    (tmp_path / "dl" / f"{NAME}.part").write_bytes(data[:half])
    res = download_speech_commands("v0.02", tmp_path / "dl", base_url=server.base_url,
                                   sha256=hashlib.sha256(data).hexdigest())
    assert server.ranges == [f"bytes={half}-"]
    assert res.resumed_from == half and res.downloaded == len(data) - half
    assert (res.folder / "yes/0a7c2a8d_nohash_0.wav").read_bytes() == files["yes/0a7c2a8d_nohash_0.wav"]


def test_download_interrupted_then_resumed(server, tmp_path):
    data, _ = _good_archive(tmp_path)
    server.files[f"/data/{NAME}"] = data
    server.cut_after = 1000
    with pytest.raises(EarmarkError) as err:
        download_speech_commands("v0.02", tmp_path / "dl", base_url=server.base_url)
    assert "re-run" in err.value.hint
    assert (tmp_path / "dl" / f"{NAME}.part").stat().st_size == 1000
    res = download_speech_commands("v0.02", tmp_path / "dl", base_url=server.base_url)
    assert res.resumed_from == 1000 and res.sha256 == hashlib.sha256(data).hexdigest()
    assert res.verified_by == ["size", "gzip-crc"]


def test_download_starts_over_when_range_is_ignored(server, tmp_path):
    data, _ = _good_archive(tmp_path)
    server.files[f"/data/{NAME}"] = data
    server.ignore_range = True
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / f"{NAME}.part").write_bytes(b"garbage that must not be kept")
    res = download_speech_commands("v0.02", tmp_path / "dl", base_url=server.base_url)
    assert res.resumed_from == 0 and res.sha256 == hashlib.sha256(data).hexdigest()


def _unsafe(kind: str) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    ok = (tarfile.TarInfo("yes/a_nohash_0.wav"), b"RIFF....")
    if kind == "dotdot":
        return [ok, (tarfile.TarInfo("yes/../../evil.txt"), b"pwned")]
    if kind == "absolute":
        return [ok, (tarfile.TarInfo("/tmp/earmark-evil.txt"), b"pwned")]
    info = tarfile.TarInfo("yes/link.wav")
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, "yes/a_nohash_0.wav"
    elif kind == "device":
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return [ok, (info, None)]


@pytest.mark.parametrize("kind,words", [("dotdot", "escapes"), ("absolute", "absolute"), ("symlink", "link"),
                                        ("hardlink", "link"), ("device", "device")])
def test_download_refuses_unsafe_archive_members(server, tmp_path, kind, words):
    server.files[f"/data/{NAME}"] = _archive(_unsafe(kind))
    dl = tmp_path / "deep" / "dl"
    with pytest.raises(EarmarkError) as err:
        download_speech_commands("v0.02", dl, base_url=server.base_url)
    assert words in err.value.title
    assert sorted(p.name for p in dl.iterdir()) == [NAME, f"{NAME}.sha256"]  # nothing extracted, no temp folder
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()


def test_safe_extract_rejects_a_damaged_archive(tmp_path):
    data, _ = _good_archive(tmp_path)
    bad = bytearray(data)
    bad[-6] ^= 0xFF  # flip a byte of the gzip CRC/length trailer
    (tmp_path / "bad.tar.gz").write_bytes(bytes(bad))
    with pytest.raises(EarmarkError) as err:
        safe_extract(tmp_path / "bad.tar.gz", tmp_path / "out")
    assert "damaged" in err.value.title
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.extracting").exists()


def test_download_unknown_version_and_unreachable_server(server, tmp_path):
    with pytest.raises(EarmarkError) as err:
        download_speech_commands("v9", tmp_path)
    assert "v0.01" in err.value.hint
    with pytest.raises(EarmarkError) as err:
        download_speech_commands("v0.01", tmp_path / "x", base_url=server.base_url)
    assert "404" in err.value.title
    with pytest.raises(EarmarkError) as err:
        download_speech_commands("v0.01", tmp_path / "y", base_url="http://127.0.0.1:9/data")
    assert "could not reach" in err.value.title


def test_cli_download_speech_commands(server, tmp_path):
    from app.cli import app

    data, _ = _good_archive(tmp_path)
    server.files["/data/speech_commands_v0.01.tar.gz"] = data
    res = CliRunner().invoke(app, ["download", "speech-commands", "--version", "v0.01", "--to", str(tmp_path / "d"),
                                   "--base-url", server.base_url])
    assert res.exit_code == 0, res.output
    assert "speech_commands_v0.01" in res.output and "earmark ingest" in res.output and "--sha256" in res.output
    assert (tmp_path / "d" / "speech_commands_v0.01" / "yes" / "0a7c2a8d_nohash_0.wav").exists()


def test_download_the_official_test_set_archive(server, tmp_path):
    data, _ = _good_archive(tmp_path)
    server.files["/data/speech_commands_test_set_v0.01.tar.gz"] = data
    res = download_speech_commands("v0.01", tmp_path / "t", base_url=server.base_url, test_set=True)
    assert res.folder.name == "speech_commands_test_set_v0.01" and (res.folder / "yes").is_dir()
