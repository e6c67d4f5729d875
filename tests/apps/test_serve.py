"""`videomamba serve`: the page over loopback, in headless Chromium, and files outside the index."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from search_fixtures import make_tiny_model, make_videos
from videomamba.apps.search_index import LoadedIndex, VideoTextEmbedder, build_index
from videomamba.apps.serve import make_server, parse_range

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serve")
    model_dir = make_tiny_model(root / "model")
    make_videos(root / "videos", 2, seconds=3.0)
    (root / "secret.txt").write_text("not for the web\n")
    build_index(root / "videos", root / "index", VideoTextEmbedder(model_dir))
    embedder = VideoTextEmbedder(model_dir)
    httpd = make_server(LoadedIndex(root / "index"), embedder.embed_texts, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def get(url: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def test_page_and_api_answer_over_loopback(server) -> None:
    base, _ = server
    status, body, _ = get(f"{base}/")
    assert status == 200 and b"videomamba search" in body and b'name="q"' in body
    status, body, headers = get(f"{base}/api/search?q=" + urllib.parse.quote("a red ball") + "&k=3")
    assert status == 200 and headers["Content-Type"] == "application/json"
    hits = json.loads(body)["hits"]
    assert len(hits) == 3 and {h["file"] for h in hits} <= {"clip_000.mp4", "clip_001.mp4"}
    status, body, _ = get(f"{base}/?q=" + urllib.parse.quote("a red ball") + "&k=3")
    assert status == 200 and body.count(b'class="hit"') == 3 and b"0:01.00" in body


def test_thumbnail_and_video_of_an_indexed_file(server) -> None:
    base, root = server
    status, body, headers = get(f"{base}/thumb?file=clip_000.mp4&t=1.5")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert body.startswith(b"\x89PNG\r\n\x1a\n")
    size = (root / "videos" / "clip_000.mp4").stat().st_size
    status, body, headers = get(f"{base}/video?file=clip_000.mp4")
    assert status == 200 and len(body) == size
    status, body, headers = get(f"{base}/video?file=clip_000.mp4", {"Range": "bytes=10-19"})
    assert status == 206 and len(body) == 10
    assert headers["Content-Range"] == f"bytes 10-19/{size}"
    assert body == (root / "videos" / "clip_000.mp4").read_bytes()[10:20]


@pytest.mark.parametrize("path", [
    "/video?file=../secret.txt", "/video?file=" + urllib.parse.quote("/etc/passwd"),
    "/thumb?file=../secret.txt&t=0", "/video?file=", "/video?file=videos/clip_000.mp4",
])
def test_files_outside_the_index_are_refused(server, path: str) -> None:
    base, _ = server
    status, body, _ = get(base + path)
    assert status == 403 and b"not for the web" not in body


@pytest.mark.parametrize("path", ["/secret.txt", "/../secret.txt", "/videos/clip_000.mp4",
                                  "/etc/passwd", "/index/manifest.json"])
def test_other_paths_are_404(server, path: str) -> None:
    base, _ = server
    status, body, _ = get(base + path)
    assert status == 404 and b"not for the web" not in body


def test_range_parsing() -> None:
    assert parse_range(None, 100) == (0, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=95-", 100) == (95, 99)
    assert parse_range("bytes=200-300", 100) == (None, 0)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/install_test_browser.sh)")
def test_page_in_headless_chromium(server, tmp_path: Path) -> None:
    base, _ = server
    url = f"{base}/?q=" + urllib.parse.quote("a green square moves up") + "&k=4"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="hit"') == 4
    assert "a green square moves up" in dom.stdout
    shot = tmp_path / "page.png"
    run = subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1000,700", url],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 5000
