"""Open an HTML file in real headless Chromium and report what the page did.

Used by the HTML report's browser tests. Speaks the Chrome DevTools Protocol over
``--remote-debugging-pipe`` (commands on the browser's fd 3, replies and events on its fd 4,
each message JSON ending in a NUL byte) with only the standard library.

Every wait is bounded by one deadline per page; the browser runs in its own process group,
which is killed when the page is done, and its throwaway profile is removed.

    result = open_page(report, evaluate=["document.querySelectorAll('table').length"])
    assert result.errors == () and result.requests == ()
    assert result.values == (3,)

What a print looks like is checked two ways: ``media="print"`` lays the page out with its
print stylesheet at the viewport's width, for measuring element boxes, and ``pdf=True``
prints it for real; ``pdf_pages`` then gives the text on each page of that PDF.
"""

from __future__ import annotations

import base64
import json
import math
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

#: Debian's /usr/bin/chromium is a shell wrapper that adds flags from /etc/chromium.d
#: (remote extensions, GPU rasterization); the binary behind it takes only ours.
_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser",
               "google-chrome-stable", "google-chrome")

#: Full-page screenshots stop here: a runaway page must not make a gigapixel PNG.
MAX_SCREENSHOT_HEIGHT = 12000

#: Console levels that count as errors: console.error() and a failed console.assert().
_ERROR_LEVELS = frozenset({"error", "assert"})

#: URL schemes whose bytes are already in the page, so loading one reads no other file.
_INLINE_SCHEMES = ("data:", "blob:")

_STDERR_TAIL = 3000

#: Paper sizes for ``print_options``, in inches as Page.printToPDF takes them. Chromium
#: prints on Letter unless told otherwise; most of the world prints on A4.
LETTER = {"paperWidth": 8.5, "paperHeight": 11.0}
A4 = {"paperWidth": 210 / 25.4, "paperHeight": 297 / 25.4}


class BrowserError(Exception):
    """Chromium did not start, went away, answered with an error, or did not answer in time."""


@dataclass(frozen=True, slots=True)
class ConsoleMessage:
    #: Runtime's console call type ("log", "info", "warning", "error", "assert", ...) or,
    #: for messages from the browser itself, Log's level ("verbose", "info", "warning",
    #: "error"). Both vocabularies are Chromium's, so this stays a string.
    level: str
    #: The message as the console would print it, with the URL it is about, if any.
    text: str
    #: "console-api" for console.* calls, else Log's source ("network", "security", ...).
    source: str


@dataclass(frozen=True, slots=True)
class PageError:
    #: "exception": uncaught in a script; "console": console.error()/assert;
    #: "log": an error the browser reported itself, such as a resource that failed to load.
    kind: Literal["exception", "console", "log"]
    text: str


@dataclass(frozen=True, slots=True)
class PageResult:
    #: The file:// URL that was loaded.
    url: str
    #: document.title once loaded (and after the evaluate expressions ran).
    title: str
    #: Every console message, in the order they arrived.
    console: tuple[ConsoleMessage, ...]
    #: Uncaught exceptions and console messages of an error level.
    errors: tuple[PageError, ...]
    #: Every URL the page requested other than its own file, in order (file:, http:, ...).
    requests: tuple[str, ...]
    #: data: and blob: URLs the page loaded: bytes it already held, not another file.
    inline_requests: tuple[str, ...]
    #: (URL, Chromium's net error such as "net::ERR_NAME_NOT_RESOLVED") per failed request.
    failed_requests: tuple[tuple[str, str], ...]
    #: The JSON value of each evaluate expression, in order; None for undefined, and
    #: Chromium's spelling ("NaN", "Infinity", "-0", "12n") for values JSON cannot carry.
    values: tuple[Any, ...]
    #: (width, height) of the document in CSS pixels, before the screenshot resized the view.
    content_size: tuple[int, int]
    #: PNG of the whole page at the viewport width, at most MAX_SCREENSHOT_HEIGHT high.
    screenshot: bytes
    #: Page.printToPDF output (print stylesheet applied) when asked for, else None.
    pdf: bytes | None


def chromium_path() -> str | None:
    """The Chromium (or Chrome) binary to run, or None when none is installed."""
    for candidate in _CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def require_chromium() -> str:
    """The Chromium binary; skips the calling test when there is none.

    Under CI (CI=true) a missing Chromium fails the test instead, because .ci/run installs
    it and a silent skip there would hide that the browser tests never ran.
    """
    path = chromium_path()
    if path is None:
        reason = "Chromium is not installed (apt-get install chromium) for the browser tests"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def open_page(path: Path | str, *, width: int = 1280, height: int = 900,
              timeout: float = 30.0, evaluate: Sequence[str] = (),
              pdf: bool = False, media: Literal["screen", "print"] | None = None,
              print_options: Mapping[str, Any] | None = None) -> PageResult:
    """Load ``path`` from file:// in headless Chromium and report what the page did.

    Waits for the load event, then a moment for timers set by load handlers, runs each
    ``evaluate`` expression in the page (promises are awaited), and takes a full-page
    screenshot (and a PDF when ``pdf``). The network is blocked at the browser level: any
    request that is not to a file fails without leaving the machine, but is still listed.
    ``media`` emulates that CSS media type from before the page loads (screenshot and
    expressions then see the print stylesheet); ``print_options`` are Page.printToPDF
    parameters for the PDF (paper size, margins), e.g. ``A4``.

    Raises FileNotFoundError when ``path`` is not a file, and BrowserError when Chromium is
    missing, fails, an expression throws, or the whole visit takes longer than ``timeout``
    seconds; the message then ends with the tail of Chromium's stderr.
    """
    if isinstance(evaluate, str):
        raise TypeError("evaluate takes a sequence of expressions, not one string")
    page = Path(path).resolve()
    if not page.is_file():
        raise FileNotFoundError(page)
    binary = chromium_path()
    if binary is None:
        raise BrowserError("Chromium is not installed")
    deadline = time.monotonic() + timeout
    profile = Path(tempfile.mkdtemp(prefix="pcapdns-chromium-"))
    stderr_path = profile / "stderr.txt"
    # A bound socket that never listens: a proxy address that refuses every connection.
    dead_proxy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    browser: _Browser | None = None
    try:
        dead_proxy.bind(("127.0.0.1", 0))
        browser = _Browser.launch(binary, profile, stderr_path, dead_proxy.getsockname()[1],
                                  deadline)
        return _visit(browser, page.as_uri(), width, height, tuple(evaluate), pdf, media,
                      dict(print_options or {}))
    except Exception as exc:
        tail = _tail(stderr_path)
        if isinstance(exc, BrowserError):
            raise BrowserError(f"{exc}\n--- Chromium stderr (tail) ---\n{tail}") from exc
        exc.add_note(f"--- Chromium stderr (tail) ---\n{tail}")
        raise
    finally:
        if browser is not None:
            browser.close()
        dead_proxy.close()
        shutil.rmtree(profile, ignore_errors=True)


def _flags(profile: Path, proxy_port: int) -> list[str]:
    return [
        "--headless=new",
        # Tests run as root in CI, and Chromium refuses to start its sandbox as root.
        "--no-sandbox",
        "--disable-gpu",
        # Containers often have a small /dev/shm; Chromium crashes when it fills up.
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--remote-debugging-pipe",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-component-extensions-with-background-pages",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-breakpad",
        "--disable-crash-reporter",
        "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
        "--no-pings",
        "--metrics-recording-only",
        "--password-store=basic",
        "--mute-audio",
        "--hide-scrollbars",
        "--force-color-profile=srgb",
        # No request may leave the machine: no name resolves, and everything that is not a
        # file goes through a proxy that refuses connections, loopback included.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--proxy-server=http://127.0.0.1:{proxy_port}",
        "--proxy-bypass-list=<-loopback>",
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        "about:blank",
    ]


class _Browser:
    """One Chromium process group and the DevTools pipe to it."""

    def __init__(self, pid: int, to_browser: int, from_browser: int, deadline: float) -> None:
        self.pid = pid
        self._to = to_browser
        self._from = from_browser
        self._deadline = deadline
        self._buffer = bytearray()
        self._next_id = 0
        self._reaped = False
        self._exit: int | None = None
        #: Every event received so far, in order (each has "method", "params", "sessionId").
        self.events: list[dict[str, Any]] = []

    @classmethod
    def launch(cls, binary: str, profile: Path, stderr_path: Path, proxy_port: int,
               deadline: float) -> _Browser:
        """Start Chromium in a process group of its own, its fds 3 and 4 on our pipes."""
        cmd_read, cmd_write = os.pipe()
        evt_read, evt_write = os.pipe()
        stderr_fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            # subprocess can only pass a descriptor under the number it has here
            # (pass_fds), and the pipe protocol wants exactly 3 and 4; posix_spawn's
            # dup2 actions place them there without running Python in the child.
            pid = os.posix_spawn(
                binary, [binary, *_flags(profile, proxy_port)], _environment(profile),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0),
                    (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, stderr_fd, 2),
                    (os.POSIX_SPAWN_DUP2, cmd_read, 3),
                    (os.POSIX_SPAWN_DUP2, evt_write, 4),
                ],
                setpgroup=0,
            )
        except BaseException:
            for fd in (cmd_write, evt_read):
                os.close(fd)
            raise
        finally:
            # Our pipe fds are close-on-exec, so only the dup2 copies reach Chromium.
            for fd in (cmd_read, evt_write, stderr_fd, devnull):
                os.close(fd)
        return cls(pid, cmd_write, evt_read, deadline)

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        """Send a command and return its result, keeping the events that arrive meanwhile."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self._write(json.dumps(message).encode() + b"\0", method)
        while True:
            reply = self._read(f"for the reply to {method}")
            if "id" not in reply:
                self.events.append(reply)
            elif reply["id"] == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def wait_event(self, method: str, session: str, match: dict[str, Any]) -> dict[str, Any]:
        """The first event ``method`` on ``session`` whose params include ``match``."""
        seen = 0
        while True:
            for event in self.events[seen:]:
                params = event.get("params", {})
                if (event.get("method") == method and event.get("sessionId") == session
                        and all(params.get(k) == v for k, v in match.items())):
                    return event
            seen = len(self.events)
            self.events.append(self._read(f"for {method} {match}"))

    def _remaining(self, waiting: str) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise BrowserError(f"timed out waiting {waiting}")
        return left

    def _write(self, data: bytes, method: str) -> None:
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self._to], [], self._remaining(f"to send {method}"))
            if writable:
                try:
                    view = view[os.write(self._to, view):]
                except BrokenPipeError:
                    raise BrowserError(f"Chromium went away ({self._status()})") from None

    def _read(self, waiting: str) -> dict[str, Any]:
        while (end := self._buffer.find(b"\0")) < 0:
            readable, _, _ = select.select([self._from], [], [], self._remaining(waiting))
            if readable:
                chunk = os.read(self._from, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium closed the pipe ({self._status()})")
                self._buffer += chunk
        message = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        try:
            decoded: dict[str, Any] = json.loads(message)
        except ValueError as exc:
            raise BrowserError(f"not a DevTools message: {message[:200]!r}") from exc
        return decoded

    def _status(self) -> str:
        if not self._reaped:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                return "still running"
            self._reaped = True
            self._exit = os.waitstatus_to_exitcode(status)
        return f"exit status {self._exit}"

    def close(self, grace: float = 2.0) -> None:
        """Ask Chromium to quit (so it reaps its own children), then kill its process group.

        The group outlives its leader while any child is left, so it is killed either way.
        """
        # A fresh, short deadline: close also runs after the page's own one has passed.
        until = self._deadline = time.monotonic() + grace
        try:
            if not self._reaped:
                self.call("Browser.close")
        except BrowserError:
            pass
        while self._status() == "still running" and time.monotonic() < until:
            time.sleep(0.02)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not self._reaped:
            os.waitpid(self.pid, 0)  # after SIGKILL this returns at once
            self._reaped = True
        os.close(self._to)
        os.close(self._from)


def _environment(profile: Path) -> dict[str, str]:
    """The caller's environment, with every home-relative directory inside ``profile``.

    --user-data-dir does not cover all: Chromium keeps its crash database under
    $XDG_CONFIG_HOME, scratch directories under $XDG_CACHE_HOME and its singleton socket
    under $TMPDIR (left behind when it is killed), and GLib puts its dconf cache under
    $XDG_CACHE_HOME too. Kept in the profile, all of it goes when the profile is removed.
    """
    home = profile / "home"
    env = dict(os.environ, HOME=str(home), TMPDIR=str(profile))
    for name, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"),
                      ("XDG_DATA_HOME", ".local/share"), ("XDG_STATE_HOME", ".local/state")):
        env[name] = str(home / sub)
    return env


def _visit(browser: _Browser, url: str, width: int, height: int, expressions: tuple[str, ...],
           want_pdf: bool, media: str | None, print_options: dict[str, Any]) -> PageResult:
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget",
                           {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable", session=session)
    browser.call("Page.setLifecycleEventsEnabled", {"enabled": True}, session)
    _set_viewport(browser, session, width, height)
    if media is not None:
        browser.call("Emulation.setEmulatedMedia", {"media": media}, session)
    navigation = browser.call("Page.navigate", {"url": url}, session)
    if navigation.get("errorText"):
        raise BrowserError(f"cannot load {url}: {navigation['errorText']}")
    # The load of this navigation, not of the about:blank the tab started with.
    browser.wait_event("Page.lifecycleEvent", session,
                       {"name": "load", "loaderId": navigation["loaderId"]})
    # Let timers that load handlers set run before looking.
    _evaluate(browser, session, "new Promise(done => setTimeout(done, 50))")
    values = tuple(_evaluate(browser, session, e) for e in expressions)
    title = str(_evaluate(browser, session, "document.title"))
    content = browser.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
    content_size = (math.ceil(content["width"]), math.ceil(content["height"]))
    pdf = None
    if want_pdf:
        printed = browser.call("Page.printToPDF", {"printBackground": True, **print_options},
                               session)
        pdf = base64.b64decode(printed["data"])
    full_height = min(max(height, content_size[1]), MAX_SCREENSHOT_HEIGHT)
    _set_viewport(browser, session, width, full_height)
    shot = browser.call("Page.captureScreenshot", {"format": "png"}, session)
    return _summarize(browser.events, session, url, title, values, content_size,
                      base64.b64decode(shot["data"]), pdf)


def require_pdftotext() -> str:
    """poppler's pdftotext; skips the calling test when it is missing (fails under CI,
    where .ci/run installs poppler-utils)."""
    path = shutil.which("pdftotext")
    if path is None:
        reason = "pdftotext is not installed (apt-get install poppler-utils)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def pdf_pages(pdf: bytes, timeout: float = 60.0) -> list[str]:
    """The text of each page of ``pdf``, as poppler's pdftotext reads it.

    Lines come top to bottom as they are laid out on the page (``-layout``), so a block of
    preformatted text keeps its lines whole and in order; the reading-order mode would
    pull its columns apart. Only what is drawn on a page is there: text that a page cuts
    off at its edge (a clipped table column, the end of a line that does not wrap) is left
    out of the PDF itself.

    Raises FileNotFoundError when pdftotext is missing, and subprocess.CalledProcessError
    when it cannot read the PDF.
    """
    binary = shutil.which("pdftotext")
    if binary is None:
        raise FileNotFoundError("pdftotext")
    # "-" for both: the PDF on stdin, the text on stdout, one form feed after each page.
    done = subprocess.run([binary, "-layout", "-enc", "UTF-8", "-", "-"], input=pdf,
                          capture_output=True, timeout=timeout, check=True)
    pages = done.stdout.decode("utf-8").split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def _set_viewport(browser: _Browser, session: str, width: int, height: int) -> None:
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                 session)


def _evaluate(browser: _Browser, session: str, expression: str) -> Any:
    reply = browser.call("Runtime.evaluate",
                         {"expression": expression, "returnByValue": True,
                          "awaitPromise": True}, session)
    if "exceptionDetails" in reply:
        raise BrowserError(f"{expression!r} threw: {_exception_text(reply['exceptionDetails'])}")
    remote = reply["result"]
    if "unserializableValue" in remote:
        return remote["unserializableValue"]
    return remote.get("value")


def _summarize(events: list[dict[str, Any]], session: str, url: str, title: str,
               values: tuple[Any, ...], content_size: tuple[int, int], screenshot: bytes,
               pdf: bytes | None) -> PageResult:
    console: list[ConsoleMessage] = []
    errors: list[PageError] = []
    requests: list[str] = []
    inline: list[str] = []
    failed: list[tuple[str, str]] = []
    request_urls: dict[str, str] = {}
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(_console_arg(a) for a in params.get("args", []))
            console.append(ConsoleMessage(params["type"], text, "console-api"))
            if params["type"] in _ERROR_LEVELS:
                errors.append(PageError("console", text))
        elif method == "Log.entryAdded":
            entry = params["entry"]
            text = entry.get("text", "")
            if entry.get("url") and entry["url"] not in text:
                text = f"{text} ({entry['url']})"
            console.append(ConsoleMessage(entry["level"], text, entry.get("source", "other")))
            if entry["level"] in _ERROR_LEVELS:
                errors.append(PageError("log", text))
        elif method == "Runtime.exceptionThrown":
            errors.append(PageError("exception", _exception_text(params["exceptionDetails"])))
        elif method == "Network.requestWillBeSent":
            requested = params["request"]["url"]
            request_urls[params["requestId"]] = requested
            if requested.startswith(_INLINE_SCHEMES):
                inline.append(requested)
            elif requested.split("#", 1)[0] != url:
                requests.append(requested)
        elif method == "Network.loadingFailed":
            requested = request_urls.get(params["requestId"], "?")
            failed.append((requested, params.get("errorText", "")))
    return PageResult(url=url, title=title, console=tuple(console), errors=tuple(errors),
                      requests=tuple(requests), inline_requests=tuple(inline),
                      failed_requests=tuple(failed), values=values, content_size=content_size,
                      screenshot=screenshot, pdf=pdf)


def _console_arg(arg: dict[str, Any]) -> str:
    if "value" in arg:
        value = arg["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return str(arg.get("unserializableValue") or arg.get("description") or arg.get("type"))


def _exception_text(details: dict[str, Any]) -> str:
    exception = details.get("exception", {})
    described = exception.get("description") or exception.get("value")
    text = details.get("text", "")
    if described is not None:
        text = f"{text} {described}".strip()
    where = details.get("url")
    if where and where not in text:  # a stack trace already says where
        text += f" ({where}:{details.get('lineNumber', 0) + 1})"
    return text


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return "(none)"
    return data[-_STDERR_TAIL:].decode(errors="replace").strip() or "(empty)"
