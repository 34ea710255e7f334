"""The report as a browser shows it: headless Chromium driven over the DevTools protocol.

Chromium is started with ``--remote-debugging-pipe`` (the protocol on file descriptors 3
and 4, no port, no extra package) and every host name resolving to nothing, so a page
that tried to fetch anything would show it as a request. The page must render (every
section in the DOM, every embedded image decoded), log no console error or exception,
request nothing but its own file, and nothing may run off the side of the page.

Skips with a reason when Chromium is absent outside CI; fails in CI (``.ci/run``
installs it).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

SECTIONS = ("metrics", "residuals", "profiles", "fractional-error", "calibration", "comparison", "physics",
            "sensitivity", "suggestions", "training-curves", "data", "config")

_PAGE_STATE = """JSON.stringify({
  sections: [...document.querySelectorAll('section[id]')].map(s => s.id),
  images: [...document.images].map(i => i.complete && i.naturalWidth > 0),
  pageWidth: document.documentElement.scrollWidth,
  viewWidth: window.innerWidth,
  overflowing: [...document.body.querySelectorAll('*')]
    .filter(e => !e.closest('.scroll') && e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
    .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')),
})"""


def _chromium() -> str:
    """The Chromium executable; skips (fails in CI) when there is none."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    msg = "headless Chromium not found (install it: apt-get install -y chromium)"
    if IN_CI:
        pytest.fail(msg + "; .ci/run installs it")
    pytest.skip(msg)


class _DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe (fd 3 in, fd 4 out)."""

    def __init__(self, executable: str, timeout: float = 60.0) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # above 9, so the shell's redirections to 3 and 4 cannot clobber them
        a, b = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
                "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1100,900", "about:blank"]
        self._proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{a} 4>&{b} {a}<&- {b}>&-', executable, *args],
            pass_fds=(a, b), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(a)
        os.close(b)
        self._timeout = timeout
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        """Close the browser (politely, then by force) and the pipes."""
        try:
            self.call("Browser.close", timeout=10.0)
        except (OSError, TimeoutError, EOFError, RuntimeError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        os.close(self._to_chrome)
        os.close(self._from_chrome)

    def _receive(self, done: Callable[[dict[str, Any]], bool], timeout: float | None = None) -> dict[str, Any]:
        end = time.monotonic() + (timeout or self._timeout)
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" not in message:
                    self.events.append(message)
                if done(message):
                    return message
            ready, _, _ = select.select([self._from_chrome], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer over the DevTools pipe in time")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise EOFError("Chromium closed the DevTools pipe")
            self._buffer += chunk

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """Send one command and return its result (events met on the way are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        number = self._next_id
        answer = self._receive(lambda m: m.get("id") == number, timeout)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return dict(answer.get("result", {}))

    def load(self, path: Path) -> dict[str, Any]:
        """Open ``path`` in a new tab, wait for its load event and return :data:`_PAGE_STATE`."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable", session=session)
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        self._receive(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session)
        result = self.call("Runtime.evaluate", {"expression": _PAGE_STATE, "returnByValue": True}, session=session)
        return dict(json.loads(result["result"]["value"]))

    def problems(self, page: Path) -> dict[str, list[str]]:
        """Console errors, exceptions, error log entries and requests other than ``page`` itself."""
        own = page.resolve().as_uri()
        out: dict[str, list[str]] = {"console": [], "requests": []}
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out["console"].append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                out["console"].append(str(details.get("exception", {}).get("description", details.get("text"))))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out["console"].append(str(params["entry"].get("text")))
            elif method == "Network.requestWillBeSent":
                url = str(params["request"]["url"])
                if url != own and not url.startswith("data:"):
                    out["requests"].append(url)
        return out


@pytest.fixture
def browser() -> Iterator[_DevTools]:
    client = _DevTools(_chromium())
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a tiny training run, with a comparison record (so every section has content)."""
    from profemu.config import Config
    from profemu.data.mock import make_mock_universe
    from profemu.runs.report import write_report
    from profemu.runs.training import train_emulator

    ds = make_mock_universe(60, seed=3, param_set="lh6", n_r=8).dataset.select_fields(["rho", "pth"])
    cfg = Config().updated({"model.hidden": [8], "train.members": 2, "train.epochs": 2, "train.batch_size": 32,
                            "data.test_fraction": 0.25, "data.input_relevance": "off"})
    run = tmp_path_factory.mktemp("browser") / "run"
    train_emulator(ds, cfg, run_dir=run)
    per_radius = {"pca_rbf": {f: {"frac_err_median": [0.1] * ds.n_r, "frac_err_p68": [0.2] * ds.n_r}
                              for f in ("rho", "pth")}}
    (run / "compare.json").write_text(json.dumps({
        "rows": [{"method": "profemu", "frac_err_median": 0.05}, {"method": "pca_rbf", "frac_err_median": 0.08}],
        "per_radius": per_radius,
        "baseline_settings": {"baselines": ["pca_rbf"], "n_train": 40, "n_test": 15, "gp_max_train": None},
    }))
    return write_report(run, dataset=ds)


def test_the_report_renders_self_contained_without_errors(browser: _DevTools, report_page: Path) -> None:
    state = browser.load(report_page)
    assert state["sections"] == list(SECTIONS)
    assert len(state["images"]) == 7 and all(state["images"]), state["images"]  # every PNG decodes
    assert state["pageWidth"] <= state["viewWidth"], state
    assert state["overflowing"] == [], state["overflowing"]  # long text wraps instead of running sideways
    assert browser.problems(report_page) == {"console": [], "requests": []}


def test_the_browser_check_sees_errors_requests_and_overflow(browser: _DevTools, tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><body><section id="metrics"></section>'
        '<img src="https://example.org/x.png"><pre style="overflow-x:auto">' + "x" * 2000 + "</pre>"
        '<script>console.error("broken"); undefinedFunction();</script></body></html>'
    )
    state = browser.load(page)
    problems = browser.problems(page)
    assert state["sections"] == ["metrics"]
    assert state["images"] == [False]
    assert "pre" in state["overflowing"]
    assert problems["requests"] == ["https://example.org/x.png"]
    assert any("broken" in text for text in problems["console"])
    assert any("undefinedFunction" in text for text in problems["console"])
