"""The built HTML, as a reader sees it: a tiny book built with the repository's own
``_config.yml`` from one executed chapter (a matplotlib figure, the chapter opening, a glued
number), opened in headless Chromium. Also the real book's chapter pages when ``make book``
has built them.

Chromium is Debian's ``chromium`` package, installed here when missing (CI runs as root);
the tests skip, saying why, only when it cannot be installed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import papermill as pm
import pytest
import websocket

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "_build" / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
    "--window-size=1200,1600",
]

TINY_CHAPTER = """# %% [markdown]
# # A tiny chapter

# %% tags=["parameters"]
data_root = None
seed = 0
device = "cpu"
output_dir = None

# %%
import matplotlib.pyplot as plt
import numpy as np

import mmcxr
from mmcxr import env

PARAMS = env.capture_parameters(globals())
mmcxr.book.chapter_header("multimodal-vae", PARAMS)

# %%
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1], [0, 1])
plt.show()
mmcxr.book.glue_value("tiny-auroc", np.float64(0.91234), ".3f")
mmcxr.book.glue_value("tiny-n", np.int64(1234))

# %% [markdown]
# The model reaches an AUROC of {glue:text}`tiny-auroc` on {glue:text}`tiny-n` studies.
# Back to the {doc}`intro`.
"""


def _find_chromium() -> str | None:
    return next(
        (p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))),
        None,
    )


def _install_chromium() -> str:
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return "not root or no apt-get here: install Debian's `chromium` package"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
    ):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
        if r.returncode:
            return f"`{' '.join(cmd)}` failed: {r.stderr.strip()[-400:]}"
    return "installed"


@pytest.fixture(scope="session")
def chromium() -> str:
    path = _find_chromium()
    if path is None:
        why = _install_chromium()
        path = _find_chromium()
        if path is None:
            pytest.skip(f"headless Chromium is not available ({why})")
    return path


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory) -> Path:
    """A one-chapter book, executed by papermill and built like the real one (-W)."""
    src = tmp_path_factory.mktemp("tiny-book")
    shutil.copy(ROOT / "_config.yml", src / "_config.yml")
    (src / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: chapter\n")
    (src / "intro.md").write_text("# Tiny book\n\nThe {doc}`chapter`.\n")
    raw = src / "raw.ipynb"
    jupytext.write(jupytext.reads(TINY_CHAPTER, fmt="py:percent"), raw)
    pm.execute_notebook(
        str(raw), str(src / "chapter.ipynb"), kernel_name="mmcxr", cwd=str(src), progress_bar=False
    )
    raw.unlink()
    jb = Path(sys.executable).with_name("jupyter-book")
    r = subprocess.run(
        [str(jb), "build", str(src), "-W", "--keep-going"], cwd=src, capture_output=True, text=True
    )
    assert r.returncode == 0, (
        f"tiny book build failed or warned:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
    )
    return src / "_build" / "html"


def test_glued_numbers_and_opening_render_without_execution(tiny_book: Path):
    html = (tiny_book / "chapter.html").read_text()
    pasted = re.findall(r'<span class="pasted-text">([^<]*)</span>', html)
    assert pasted == ["0.912", "1234"], "glued values are pasted from the executed outputs"
    assert "{glue" not in html
    assert "Klug, Sutter" in html, "the chapter opening names the paper"
    assert "<table" in html, "the parameter table renders as a table (MyST outputs)"
    assert "params/multimodal-vae/full.yaml" in html
    assert (tiny_book / "_sources" / "chapter.ipynb").is_file(), "the .ipynb is downloadable"
    assert 'href="_sources/chapter.ipynb"' in html, "the download menu links the .ipynb"


class DevTools:
    """Just enough of the Chrome DevTools protocol: open a page, evaluate JS, screenshot."""

    def __init__(self, binary: str, profile: Path):
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ws = None
        self.events: list[dict] = []
        self._id = 0
        try:
            self._connect(profile / "DevToolsActivePort", time.time() + 60)
        except BaseException:
            self.close()
            raise

    def _connect(self, port_file: Path, deadline: float) -> None:
        import urllib.request

        pages: list[dict] = []
        while not pages:
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
            if not (port_file.is_file() and port_file.read_text().strip()):
                continue
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as resp:
                pages = [t for t in json.load(resp) if t["type"] == "page"]
        self.ws = websocket.create_connection(
            pages[0]["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )

    def call(self, method: str, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]
            if "method" in msg:
                self.events.append(msg)

    def open(self, url: str) -> None:
        """Navigate and wait for the load event (images and stylesheets loaded)."""
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, js: str):
        res = self.call("Runtime.evaluate", expression=js, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
        return res["result"]["value"]

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# Waits for the page and its images, then reports every image and every link.
PAGE_REPORT = """
(async () => {
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  return {
    images: imgs.map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    title: document.title,
  };
})()
"""


def _page_report(chromium: str, page: Path, profile: Path, screenshot: Path | None = None):
    tools = DevTools(chromium, profile)
    try:
        tools.open(page.as_uri())
        report = tools.evaluate(PAGE_REPORT)
        if screenshot is not None:
            size = tools.call("Page.getLayoutMetrics")["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            png = tools.call(
                "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True
            )["data"]
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(png))
    finally:
        tools.close()
    return report


def _broken_local_links(links: list[str]) -> list[str]:
    from urllib.parse import unquote, urlsplit

    broken = []
    for href in links:
        u = urlsplit(href)
        if u.scheme == "file" and u.path.endswith((".html", ".ipynb", ".md")):
            if not Path(unquote(u.path)).is_file():
                broken.append(href)
    return broken


@pytest.mark.browser
def test_chapter_page_in_chromium(chromium: str, tiny_book: Path, tmp_path: Path):
    shot = ARTIFACTS / "chapter.png"
    report = _page_report(chromium, tiny_book / "chapter.html", tmp_path / "profile", shot)
    assert "tiny chapter" in report["title"].lower()
    figures = [i for i in report["images"] if "_images/" in i["src"]]
    assert figures, "the chapter's matplotlib figure is on the page"
    assert all(i["ok"] for i in report["images"]), f"images that did not load: {report['images']}"
    local = [h for h in report["links"] if h.startswith("file:")]
    assert any(h.endswith("intro.html") for h in local), "the {doc} link is on the page"
    assert not _broken_local_links(report["links"])
    assert shot.stat().st_size > 10_000, "a screenshot of the rendered page is kept"


REAL_CHAPTERS = sorted((ROOT / "_build" / "html" / "book" / "chapters").glob("*.html"))


@pytest.mark.browser
@pytest.mark.skipif(not REAL_CHAPTERS, reason="the real book is not built (run `make book`)")
def test_built_book_chapters_in_chromium(chromium: str, tmp_path: Path):
    problems = []
    for page in REAL_CHAPTERS:
        report = _page_report(chromium, page, tmp_path / page.stem)
        problems += [
            f"{page.name}: image {i['src']} did not load" for i in report["images"] if not i["ok"]
        ]
        problems += [f"{page.name}: broken link {h}" for h in _broken_local_links(report["links"])]
    assert not problems, "\n".join(problems)
