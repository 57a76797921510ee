"""A tiny Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (no extra deps).

Headless Debian ``chromium`` reads NUL-terminated JSON commands from fd 3 and writes
replies and events to fd 4. ``Browser`` opens pages, records console errors, uncaught
exceptions, dialogs (``alert``) and network requests, evaluates JavaScript and takes
screenshots. Every wait is bounded by a deadline. Also: ``png_pixels`` (a small PNG
decoder on zlib + numpy) for checking that a screenshot is not blank.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


@dataclass
class PageLoad:
    """What happened while one page loaded and rendered."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    wall_s: float = 0.0


class Browser:
    """One headless Chromium process driven through the DevTools pipe."""

    def __init__(self, width: int = 1280, height: int = 900, timeout_s: float = 20.0) -> None:
        exe = find_chromium()
        if exe is None:
            raise RuntimeError("chromium not found (apt-get install chromium)")
        self.timeout_s = timeout_s
        self._profile = tempfile.mkdtemp(prefix="tv-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire_fds() -> None:  # runs in the child: commands on fd 3, replies on fd 4
            r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3), os.dup2(w, 4)

        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--mute-audio", f"--user-data-dir={self._profile}",
                f"--window-size={width},{height}", "about:blank"]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, preexec_fn=wire_fds,  # noqa: PLW1509
                                      close_fds=False)
        os.close(to_child_r), os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self._session = self._attach_page()

    # --- protocol -------------------------------------------------------------------------
    def _send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = "page",
             timeout_s: float | None = None) -> dict[str, Any]:
        """Send a command and wait for its reply; events read meanwhile are kept."""
        sid = self._session if session == "page" else session
        want = self._send(method, params, sid)
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            msg = self._read_message(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._events.append(msg)
                if msg["method"] == "Page.javascriptDialogOpening":  # never let alert() block the page
                    self._send("Page.handleJavaScriptDialog", {"accept": True}, msg.get("sessionId"))

    def _attach_page(self) -> str:
        targets = self.call("Target.getTargets", session=None)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        sid = self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True},
                        session=None)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=sid)
        return sid

    # --- pages ----------------------------------------------------------------------------
    def evaluate(self, expression: str, await_promise: bool = False) -> Any:
        reply = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                               "awaitPromise": await_promise})
        if "exceptionDetails" in reply:
            raise RuntimeError(f"evaluate failed: {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")

    def open(self, path: Path, ready: str = "document.body && document.body.dataset.tvDone === '1'"
             ) -> PageLoad:
        """Navigate to a local file and wait until ``ready`` is true (or the deadline)."""
        url = Path(path).resolve().as_uri()
        self._events.clear()
        t0 = time.monotonic()
        self.call("Page.navigate", {"url": url})
        deadline = t0 + self.timeout_s
        while not self.evaluate(f"!!({ready})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page not ready within {self.timeout_s} s: {url}")
            time.sleep(0.02)
        load = PageLoad(url=url, wall_s=time.monotonic() - t0)
        self.call("Runtime.evaluate", {"expression": "0"})  # flush pending events
        self._collect(load)
        return load

    def _collect(self, load: PageLoad) -> None:
        for ev in self._events:
            method, p = ev["method"], ev.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                load.console_errors.append(" ".join(str(a.get("value", a.get("description")))
                                                    for a in p.get("args", [])))
            elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
                load.console_errors.append(p["entry"].get("text", ""))
            elif method == "Runtime.exceptionThrown":
                details = p["exceptionDetails"]
                load.exceptions.append(details.get("exception", {}).get("description") or details.get("text"))
            elif method == "Page.javascriptDialogOpening":
                load.dialogs.append(p.get("message", ""))
            elif method == "Network.requestWillBeSent":
                load.requests.append(p["request"]["url"])

    def screenshot(self, scale: float = 1.0, full_page: bool = False) -> bytes:
        """PNG of the viewport (or the whole page), optionally scaled down."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        if scale != 1.0 or full_page:
            x, y, w, h = self.evaluate(
                "[window.scrollX, window.scrollY, document.documentElement.clientWidth, "
                + ("document.documentElement.scrollHeight]" if full_page else "window.innerHeight]"))
            if full_page:
                x = y = 0
            params["clip"] = {"x": x, "y": y, "width": w, "height": h, "scale": scale}
        return base64.b64decode(self.call("Page.captureScreenshot", params)["data"])

    def close(self) -> None:
        try:
            self._send("Browser.close")
            self._proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait(timeout=5)
        finally:
            os.close(self._to_child), os.close(self._from_child)
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def png_pixels(png: bytes) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG into an (h, w, channels) uint8 array."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, color, _, _, interlace = header
    channels = {2: 3, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, color type {color}, interlace {interlace})")
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        out[y] = _unfilter(kind, line, prev, channels)
        prev = out[y].astype(np.int32)
    return out.reshape(height, width, channels)


def _unfilter(kind: int, line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    if kind == 0:
        return line
    if kind == 2:
        return (line + prev) & 0xFF
    if kind == 1:  # Sub: a running sum per channel
        return np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) & 0xFF
    cur = line.tolist()
    up = prev.tolist()
    for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        if kind == 3:
            cur[i] = (cur[i] + ((a + up[i]) >> 1)) & 0xFF
        else:  # Paeth
            c = up[i - bpp] if i >= bpp else 0
            p = a + up[i] - c
            pa, pb, pc = abs(p - a), abs(p - up[i]), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (up[i] if pb <= pc else c)
            cur[i] = (cur[i] + pred) & 0xFF
    return np.array(cur, dtype=np.int32)
