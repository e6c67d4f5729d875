"""`videomamba serve INDEX`: a small local web page to search an index.

Routes (GET only): ``/`` the page (``?q=...&k=...`` renders the hits server-side, so it works
without JavaScript), ``/api/search?q=...&k=...`` the hits as JSON, ``/thumb?file=F&t=S`` a PNG
thumbnail of file F at S seconds, ``/video?file=F`` the video itself (with HTTP range requests,
so a browser can seek to ``#t=start,end``). Only files listed in the index are served: any other
``file`` is refused with 403, any other path is 404. Binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import struct
import threading
import zlib
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, quote, urlsplit

log = logging.getLogger(__name__)

THUMB_WIDTH = 192
MAX_K = 100
VIDEO_TYPES = {".mp4": "video/mp4", ".webm": "video/webm", ".mkv": "video/x-matroska",
               ".mov": "video/quicktime", ".avi": "video/x-msvideo", ".m4v": "video/mp4"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", help="index directory written by `videomamba index`")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    parser.add_argument("--backend", default="numpy", choices=("numpy", "faiss", "auto"))
    parser.add_argument("--model", default=None, help="model directory, if it moved")
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from videomamba.apps.search_index import LoadedIndex, embedder_for_index

    index = LoadedIndex(args.index, args.backend)
    embedder = embedder_for_index(index.manifest, args.model, args.device)
    server = make_server(index, embedder.embed_texts, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"serving {args.index} ({len(index)} segments) on http://{host}:{port}/  (Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def make_server(index: Any, embed_texts: Callable[[list[str]], Any], host: str = "127.0.0.1",
                port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server over a :class:`~videomamba.apps.search_index.LoadedIndex`; call
    ``serve_forever()`` (e.g. in a thread) and ``shutdown()``."""
    lock = threading.Lock()  # the model is not made for concurrent forward passes

    def search(query: str, k: int) -> list[Any]:
        with lock:
            vector = embed_texts([query])[0]
        return index.search_vector(vector, k)

    handler = type("SearchHandler", (SearchHandler,), {"index": index, "search": staticmethod(search)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


class SearchHandler(BaseHTTPRequestHandler):
    index: Any = None
    search: Callable[[str, int], list[Any]]
    server_version = "videomamba-search"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        routes = {"/": self.page, "/api/search": self.api_search, "/thumb": self.thumb,
                  "/video": self.video}
        route = routes.get(url.path)
        if route is None:
            self.send_text(HTTPStatus.NOT_FOUND, "not found")
            return
        try:
            route(params)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as err:  # one bad request must not take the server down
            log.exception("request %s failed", self.path)
            self.send_text(HTTPStatus.INTERNAL_SERVER_ERROR, f"error: {err}")

    # ------------------------------------------------------------------ routes
    def page(self, params: dict[str, str]) -> None:
        query = params.get("q", "").strip()
        k = parse_k(params.get("k"))
        hits = self.search(query, k) if query else []
        self.send_bytes(HTTPStatus.OK, render_page(query, k, hits, len(self.index)).encode(),
                        "text/html; charset=utf-8")

    def api_search(self, params: dict[str, str]) -> None:
        query = params.get("q", "").strip()
        if not query:
            self.send_text(HTTPStatus.BAD_REQUEST, "missing q")
            return
        hits = self.search(query, parse_k(params.get("k")))
        body = json.dumps({"query": query, "hits": [h.to_dict() for h in hits]}).encode()
        self.send_bytes(HTTPStatus.OK, body, "application/json")

    def indexed_file(self, params: dict[str, str]) -> Path | None:
        """The requested file if the index lists it; otherwise answers 403 and returns None."""
        path = self.index.resolve_file(params.get("file", ""))
        if path is None:
            self.send_text(HTTPStatus.FORBIDDEN, "that file is not in the index")
            return None
        if not path.is_file():
            self.send_text(HTTPStatus.NOT_FOUND, "indexed file no longer exists")
            return None
        return path

    def thumb(self, params: dict[str, str]) -> None:
        path = self.indexed_file(params)
        if path is None:
            return
        try:
            seconds = max(float(params.get("t", "0")), 0.0)
        except ValueError:
            self.send_text(HTTPStatus.BAD_REQUEST, "t must be seconds")
            return
        self.send_bytes(HTTPStatus.OK, thumbnail_png(str(path), round(seconds, 2)), "image/png",
                        cache=True)

    def video(self, params: dict[str, str]) -> None:
        path = self.indexed_file(params)
        if path is None:
            return
        size = path.stat().st_size
        first, last = parse_range(self.headers.get("Range"), size)
        if first is None:
            self.send_text(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "bad range")
            return
        partial = self.headers.get("Range") is not None
        self.send_response(HTTPStatus.PARTIAL_CONTENT if partial else HTTPStatus.OK)
        self.send_header("Content-Type", VIDEO_TYPES.get(path.suffix.lower(),
                                                         "application/octet-stream"))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(last - first + 1))
        if partial:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        with open(path, "rb") as handle:
            handle.seek(first)
            remaining = last - first + 1
            while remaining > 0:
                chunk = handle.read(min(1 << 16, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)

    # ------------------------------------------------------------------ helpers
    def send_bytes(self, status: int, body: bytes, content_type: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def send_text(self, status: int, text: str) -> None:
        self.send_bytes(status, (text + "\n").encode(), "text/plain; charset=utf-8")


def parse_k(value: str | None) -> int:
    try:
        return min(max(int(value), 1), MAX_K) if value else 10
    except ValueError:
        return 10


def parse_range(header: str | None, size: int) -> tuple[int | None, int]:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` -> inclusive ``(first, last)``; no header:
    the whole file; an unsatisfiable one: ``(None, 0)``."""
    if not header:
        return 0, size - 1
    try:
        unit, spec = header.split("=", 1)
        start_text, end_text = spec.split(",")[0].strip().split("-", 1)
        if unit.strip() != "bytes":
            return None, 0
        if start_text == "":
            first, last = max(size - int(end_text), 0), size - 1
        else:
            first = int(start_text)
            last = min(int(end_text), size - 1) if end_text else size - 1
    except ValueError:
        return None, 0
    return (first, last) if 0 <= first <= last else (None, 0)


@lru_cache(maxsize=512)
def thumbnail_png(path: str, seconds: float, width: int = THUMB_WIDTH) -> bytes:
    """PNG of the frame shown at ``seconds`` in ``path``, ``width`` pixels wide."""
    import numpy as np

    from videomamba.data.decoding import open_video
    from videomamba.data.transforms import resize

    with open_video(path) as reader:
        times = reader.frame_times() if hasattr(reader, "frame_times") else \
            np.arange(reader.num_frames) / max(reader.fps, 1e-6)
        index = int(np.clip(np.searchsorted(times, seconds, side="right") - 1, 0, len(times) - 1))
        frame = reader.get_frames([index])  # (1, C, H, W) uint8
    height = max(int(round(frame.shape[-2] * width / frame.shape[-1])), 1)
    small = resize(frame.float(), (height, width)).round().clamp(0, 255).byte()
    return encode_png(small[0].permute(1, 2, 0).contiguous().numpy())


def encode_png(rgb: Any) -> bytes:
    """A PNG file of an ``(H, W, 3)`` uint8 array (no imaging library needed)."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b""))


def render_page(query: str, k: int, hits: list[Any], num_segments: int) -> str:
    """The search page: a query box and, for each hit, its thumbnail, file and time span."""
    from videomamba.apps.search_index import format_time

    cards = []
    for hit in hits:
        file_q = quote(hit.file)
        middle = (hit.start + hit.end) / 2
        span = f"{format_time(hit.start)} &ndash; {format_time(hit.end)}"
        cards.append(
            f'<li class="hit" data-file="{html.escape(hit.file)}" data-start="{hit.start:.3f}" '
            f'data-end="{hit.end:.3f}">'
            f'<a href="/video?file={file_q}#t={hit.start:.2f},{hit.end:.2f}">'
            f'<img src="/thumb?file={file_q}&amp;t={middle:.2f}" alt="{html.escape(hit.file)} at '
            f'{middle:.1f}s" width="{THUMB_WIDTH}"></a>'
            f'<div class="meta"><b>#{hit.rank}</b> <span class="file">{html.escape(hit.file)}'
            f'</span><br><span class="time">{span}</span> '
            f'<span class="score">score {hit.score:.3f}</span></div></li>')
    if query and not hits:
        cards.append('<li class="empty">no results</li>')
    summary = (f'{len(hits)} segments for &ldquo;{html.escape(query)}&rdquo;' if query
               else f"{num_segments} segments indexed")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>videomamba search</title>
<style>
body {{ font-family: sans-serif; margin: 24px; background: #fafafa; color: #222; }}
form {{ margin-bottom: 16px; }} input[type=text] {{ width: 420px; font-size: 16px; padding: 6px; }}
ol {{ list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 14px; }}
.hit {{ background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px;
        width: {THUMB_WIDTH}px; }}
.hit img {{ display: block; border-radius: 4px; }} .meta {{ font-size: 13px; margin-top: 6px; }}
.file {{ word-break: break-all; }} .score {{ color: #777; }}
</style></head>
<body><h1>videomamba search</h1>
<form method="get" action="/"><input type="text" name="q" value="{html.escape(query)}"
 placeholder="a red ball moving left" autofocus> <input type="number" name="k" value="{k}"
 min="1" max="{MAX_K}"> <button type="submit">Search</button></form>
<p id="summary">{summary}</p>
<ol id="hits">{''.join(cards)}</ol>
</body></html>
"""
