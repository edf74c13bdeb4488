"""The built HTML, as a reader sees it: a tiny book built with the repository's own
``_config.yml`` and CSS from one executed chapter (a matplotlib figure, the chapter opening, a
glued number, a paper-beside-ours comparison table, a claims table), opened in headless
Chromium through Selenium at a 1,400 px wide window. Also the real book's chapter pages and
scorecard when ``make book`` has built them.

Chromium and its WebDriver are Debian's ``chromium`` and ``chromium-driver`` packages,
installed here with apt when missing (CI runs as root on a fresh machine); the browser tests
skip, saying why, only when they cannot be installed. A full-page screenshot of every page
checked is kept under ``_build/test-artifacts/``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jupytext
import papermill as pm
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from mmcxr import book

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "_build" / "test-artifacts"
WIDTH, HEIGHT = 1400, 1000
APT_PACKAGES = ("chromium", "chromium-driver")
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    f"--window-size={WIDTH},{HEIGHT}",
]

TINY_CHAPTER = """# %% [markdown]
# # A tiny chapter

# %% tags=["parameters"]
data_root = None
seed = 0
device = "cpu"
output_dir = None
profile = "custom"

# %%
import matplotlib.pyplot as plt
import numpy as np

from mmcxr import chapter_page as page
from mmcxr import metrics
from mmcxr.chapters import late_fusion_reference as reference
from mmcxr.claims import show_claims
from mmcxr.params import common

PARAMS = page.open_chapter("multimodal-vae", globals(), common())

# %%
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1], [0, 1])
plt.show()
page.glue_value("tiny-auroc", np.float64(0.91234), ".3f")
page.glue_value("tiny-n", np.int64(1234))

# %% [markdown]
# The model reaches an AUROC of {glue:text}`tiny-auroc` on {glue:text}`tiny-n` studies.
# Back to the {doc}`intro`.
#
# ## Results
#
# The widest table a chapter shows, built as the late-fusion chapter builds its Figure 4:
# eight runs, five metrics, ours with bootstrap intervals (made up here) beside the paper's.

# %%
NAMES = {"multimodal": "Multimodal", "image": "Image", "text": "Text", "full": "Full",
         "75": "75", "bce": "BCE", "focal": "Focal"}
runs = reference.results_table()
runs.index = [f"{NAMES[m]} {NAMES[d]} {NAMES[lo]} loss"
              for m, d, lo in zip(runs["model"], runs["dataset"], runs["loss"], strict=True)]
paper = runs.loc[runs["dataset"].eq("75") | runs["model"].eq("multimodal"), list(reference.METRICS)]
ours = (paper * 0.93).round(4)
for m in reference.METRICS:
    ours[f"{m}_lo"] = (ours[m] - 0.0612).clip(lower=0.0)
    ours[f"{m}_hi"] = (ours[m] + 0.0488).clip(upper=1.0)
metrics.style_comparison(metrics.comparison_table(ours, paper, metrics=list(reference.METRICS)))

# %% [markdown]
# ## Claims

# %%
show_claims(
    {
        "chapter": "multimodal-vae",
        "paper": "a paper",
        "profile": "custom",
        "data": {"kind": "synthetic", "format": "mimic-cxr", "root": None},
        "claims": [
            {"id": "a", "claim": "A holds", "paper_evidence": "1", "ours": "1", "holds": True},
            {"id": "b", "claim": "B fails", "paper_evidence": "2", "ours": "0", "holds": False},
            {"id": "c", "claim": "C untested", "paper_evidence": "3", "ours": "-", "holds": None},
        ],
    }
)
"""

VERDICT_WORDS = ["holds", "does not hold", "not testable here"]


# --------------------------------------------------------------------------------------------
# Chromium and its driver


def _binaries() -> tuple[str | None, str | None]:
    browser = next(
        (p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))),
        None,
    )
    return browser, shutil.which("chromedriver")


def _apt_install(packages: tuple[str, ...]) -> str:
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"not root or no apt-get here: install Debian's {' and '.join(packages)}"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
    ):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
        if r.returncode:
            return f"`{' '.join(cmd)}` failed: {r.stderr.strip()[-400:]}"
    return "installed"


@pytest.fixture(scope="session")
def chrome_binaries() -> tuple[str, str]:
    """(chromium, chromedriver), from Debian; both come from the same source package, so
    their versions match."""
    browser, driver = _binaries()
    if browser is None or driver is None:
        why = _apt_install(APT_PACKAGES)
        browser, driver = _binaries()
        if browser is None or driver is None:
            pytest.skip(f"headless Chromium and chromedriver are not available ({why})")
    return browser, driver


@pytest.fixture(scope="module")
def browser(chrome_binaries: tuple[str, str], tmp_path_factory):
    """One headless Chromium, 1,400 px wide, driven by Selenium through Debian's chromedriver
    (given explicitly, so Selenium Manager never tries to download one)."""
    binary, driver_path = chrome_binaries
    options = Options()
    options.binary_location = binary
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


# --------------------------------------------------------------------------------------------
# the tiny book


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory) -> Path:
    """A one-chapter book, executed by papermill and built like the real one (-W)."""
    src = tmp_path_factory.mktemp("tiny-book")
    shutil.copy(ROOT / "_config.yml", src / "_config.yml")
    shutil.copytree(ROOT / "book" / "_static", src / "book" / "_static")
    (src / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: chapter\n")
    (src / "intro.md").write_text("# Tiny book\n\nThe {doc}`chapter`.\n")
    raw = src / "raw.ipynb"
    jupytext.write(jupytext.reads(TINY_CHAPTER, fmt="py:percent"), raw)
    pm.execute_notebook(
        str(raw), str(src / "chapter.ipynb"), kernel_name="mmcxr", cwd=str(src),
        progress_bar=False, **book.PAPERMILL_OPTIONS,
    )  # fmt: skip
    raw.unlink()
    jb = Path(sys.executable).with_name("jupyter-book")
    r = subprocess.run(
        [str(jb), "build", str(src), "-W", "--keep-going"], cwd=src, capture_output=True, text=True
    )
    assert r.returncode == 0, (
        f"tiny book build failed or warned:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
    )
    return src / "_build" / "html"


@pytest.mark.slow
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
    assert 'href="_static/mmcxr.css' in html, "the book's CSS is linked from every page"
    assert (tiny_book / "_static" / "mmcxr.css").is_file()


# --------------------------------------------------------------------------------------------
# what the browser reports

# Waits for the page's images, then reports them, the links, the window and the layout of
# every table in the article column (the column sphinx-book-theme sets the text in).
PAGE_REPORT = """
document.querySelectorAll('details').forEach(d => { d.open = true; });  // folded tables too
const imgs = [...document.images];
imgs.forEach(i => { i.loading = 'eager'; });
await Promise.all(imgs.map(i => i.decode().catch(() => null)));
const column = document.querySelector('article.bd-article') || document.querySelector('main');
const box = e => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right,
  width: r.width, height: r.height}; };
// the nearest ancestor inside the column that scrolls sideways (a wide data table's frame)
const scroller = t => { for (let e = t.parentElement; e && e !== column; e = e.parentElement) {
  if (['auto', 'scroll'].includes(getComputedStyle(e).overflowX)) {
    return {...box(e), clientWidth: e.clientWidth}; } } return null; };
return {
  title: document.title,
  innerWidth: window.innerWidth,
  images: imgs.map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0})),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  column: column ? {...box(column), clientWidth: column.clientWidth,
                    tag: column.tagName + '.' + column.className} : null,
  tables: column ? [...column.querySelectorAll('table')].map(t => ({...box(t),
    scrollWidth: t.scrollWidth, text: t.innerText.replace(/\\s+/g, ' ').slice(0, 400),
    caption: (t.caption ? t.caption.innerText : ''), scroller: scroller(t),
    heads: [...t.querySelectorAll('thead th')].map(h => h.innerText.trim())})) : [],
  verdicts: [...document.querySelectorAll('.verdict')].map(v => ({...box(v),
    text: v.innerText.trim(), cls: v.className,
    background: getComputedStyle(v).backgroundColor, color: getComputedStyle(v).color})),
};
"""
PAGE_REPORT_JS = f"return (async () => {{ {PAGE_REPORT} }})();"


def _save_full_page(driver: webdriver.Chrome, path: Path) -> None:
    """A screenshot of the whole page at the window's width: the window is made as tall as
    the page for the shot, then given back its size."""
    size = driver.get_window_size()
    height, chrome = driver.execute_script(
        "return [document.documentElement.scrollHeight, outerHeight - innerHeight];"
    )
    driver.set_window_size(WIDTH, height + chrome)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(path)), f"no screenshot of {driver.current_url}"
    finally:
        driver.set_window_size(size["width"], size["height"])


def _page_report(driver: webdriver.Chrome, page: Path, screenshot: Path) -> dict:
    driver.get(page.as_uri())  # returns after the load event
    report = driver.execute_script(PAGE_REPORT_JS)
    _save_full_page(driver, screenshot)
    return report


def _broken_local_links(links: list[str]) -> list[str]:
    broken = []
    for href in links:
        u = urlsplit(href)
        if u.scheme == "file" and u.path.endswith((".html", ".ipynb", ".md")):
            if not Path(unquote(u.path)).is_file():
                broken.append(href)
    return broken


def _overflowing_tables(report: dict, *, scroll_ok: bool = False) -> list[str]:
    """Tables wider than the article column, or reaching past its right edge.

    With ``scroll_ok`` a wide *data* table (a loader's rows, all columns) may scroll sideways
    inside a frame that itself fits the column; a paper-beside-ours table (its caption starts
    "Each cell") must always fit without scrolling.
    """
    col = report["column"]

    def fits(e: dict, width: float) -> bool:
        return width <= col["clientWidth"] and e["right"] <= col["right"] + 0.5

    return [
        f"table {t['text'][:50]!r}: {t['width']:.0f} px wide (scrollWidth {t['scrollWidth']}), "
        f"right edge {t['right']:.0f} px, the column ({col['tag']}) is {col['clientWidth']} px "
        f"wide and ends at {col['right']:.0f} px"
        for t in report["tables"]
        if not fits(t, t["scrollWidth"])
        and not (
            scroll_ok
            and t["scroller"] is not None
            and not t["caption"].startswith("Each cell")
            and fits(t["scroller"], t["scroller"]["clientWidth"])
        )
    ]


def _verdict_problems(driver: webdriver.Chrome, report: dict) -> list[str]:
    """Every verdict badge is laid out, styled by the book's CSS and drawn (pixels)."""
    problems = []
    elements = driver.find_elements(By.CSS_SELECTOR, ".verdict")
    for v, el in zip(report["verdicts"], elements, strict=True):
        if v["width"] <= 0 or v["height"] <= 0 or not v["text"]:
            problems.append(f"verdict {v['cls']!r} is not laid out: {v}")
            continue
        if v["background"] in ("rgba(0, 0, 0, 0)", "transparent"):
            problems.append(f"verdict {v['text']!r} has no badge style (book CSS not loaded?)")
        # the badge as drawn: its text must put a good share of ink on the background
        img = Image.open(io.BytesIO(el.screenshot_as_png)).convert("L")
        hist = img.histogram()
        background = max(range(256), key=hist.__getitem__)
        ink = sum(n for level, n in enumerate(hist) if abs(level - background) > 60)
        if ink < 0.10 * img.width * img.height:  # text ~18%, an empty glyph box ~6%
            problems.append(
                f"verdict {v['text']!r} draws almost nothing ({ink} of "
                f"{img.width * img.height} px differ from its background)"
            )
    return problems


# --------------------------------------------------------------------------------------------
# the pages


@pytest.mark.browser
def test_chapter_page_in_chromium(browser: webdriver.Chrome, tiny_book: Path):
    shot = ARTIFACTS / "tiny-book-chapter.png"
    report = _page_report(browser, tiny_book / "chapter.html", shot)
    assert report["innerWidth"] == WIDTH, "the page is checked in a 1,400 px wide window"
    assert "tiny chapter" in report["title"].lower()
    figures = [i for i in report["images"] if "_images/" in i["src"]]
    assert figures, "the chapter's matplotlib figure is on the page"
    assert all(i["ok"] for i in report["images"]), f"images that did not load: {report['images']}"
    local = [h for h in report["links"] if h.startswith("file:")]
    assert any(h.endswith("intro.html") for h in local), "the {doc} link is on the page"
    assert not _broken_local_links(report["links"])
    assert Image.open(shot).width == WIDTH and shot.stat().st_size > 10_000, "a screenshot is kept"

    col = report["column"]
    assert col is not None and col["tag"].startswith("ARTICLE"), "the article column is found"
    comparison = [t for t in report["tables"] if "AUROC" in t["heads"]]
    assert len(comparison) == 1, f"the comparison table is in the column: {report['tables']}"
    assert comparison[0]["heads"][-5:] == ["Accuracy", "Precision", "Recall", "F1", "AUROC"]
    assert "paper 0.993" in comparison[0]["text"], "the paper's numbers are in the cells"
    assert not _overflowing_tables(report), "\n".join(_overflowing_tables(report))

    assert [v["text"] for v in report["verdicts"]] == VERDICT_WORDS
    assert len({v["background"] for v in report["verdicts"]}) == 3, "one colour per verdict"
    problems = _verdict_problems(browser, report)
    assert not problems, "\n".join(problems)


REAL_BUILD = ROOT / "_build" / "html" / "book"
REAL_PAGES = sorted((REAL_BUILD / "chapters").glob("*.html")) + sorted(
    (REAL_BUILD / "generated").glob("scorecard.html")
)


@pytest.mark.browser
@pytest.mark.skipif(not REAL_PAGES, reason="the real book is not built (run `make book`)")
def test_built_book_pages_in_chromium(browser: webdriver.Chrome):
    problems = []
    for page in REAL_PAGES:
        report = _page_report(browser, page, ARTIFACTS / f"book-{page.stem}.png")
        assert report["innerWidth"] == WIDTH
        problems += [
            f"{page.name}: image {i['src']} did not load" for i in report["images"] if not i["ok"]
        ]
        problems += [f"{page.name}: broken link {h}" for h in _broken_local_links(report["links"])]
        if report["column"] is None:
            problems.append(f"{page.name}: no article column")
        else:
            problems += [f"{page.name}: {p}" for p in _overflowing_tables(report, scroll_ok=True)]
        problems += [f"{page.name}: {p}" for p in _verdict_problems(browser, report)]
    assert not problems, "\n".join(problems)
