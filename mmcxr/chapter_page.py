"""What a chapter calls to show itself: its opening, its method's code, its glued numbers,
its exercises.

This is the notebooks' side of the book. :mod:`mmcxr.book`, the tool that executes chapters
and builds the book, and this module never import each other: both read the profiles from
:mod:`mmcxr.profiles`. Every chapter opens the same way (the paper, what is reproduced, how
to re-run it, the run's parameters and environment folded away), with text from the registry
in :mod:`mmcxr.papers`, so it is written once and cannot drift from the scorecard. The
functions here display Markdown in the executed notebook; Jupyter Book renders it with the
page (``nb_render_markdown_format: myst``), so tables and admonitions in it work.
"""

from __future__ import annotations

import inspect
import re
import shlex
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mmcxr import env, papers, profiles
from mmcxr.claims import cell
from mmcxr.params import Param, validate
from mmcxr.provenance import record_provenance

_GLUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _display_markdown(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))


def _code(value: Any) -> str:
    return f"`{cell(repr(value))}`"


def rerun_commands(slug: str) -> str:
    """The three papermill command lines: this book's run, paper scale, real data."""
    ch = papers.chapter(slug)
    ds = papers.dataset(ch.primary_format)
    real_root = ds.example_root if ds else "/path/to/the/real/root"
    nb = f"{slug}.ipynb"
    return "\n".join(
        [
            "cd notebooks   # in a checkout, once `make test` has set up .venv",
            "# this page: the book profile (the notebook's defaults)",
            f"papermill {nb} out.ipynb -k mmcxr",
            "# the paper's scale: the full profile, meant for a GPU",
            f"papermill {nb} out.ipynb -k mmcxr -f params/{slug}/full.yaml -p profile full",
            "# real data: the unchanged release, at its root",
            f"papermill {nb} out.ipynb -k mmcxr -p data_root {real_root}",
        ]
    )


def header_markdown(
    slug: str, params: dict[str, Any], environment: dict[str, Any] | None = None
) -> str:
    """The chapter opening as MyST Markdown (see :func:`open_chapter`).

    The parameters appear here once, folded with the run's environment into one collapsed
    ``<details>`` block (HTML, so it folds in JupyterLab and in the book alike).
    """
    ch = papers.chapter(slug)
    parts = []
    if ch.paper_file:
        parts += [
            ":::{admonition} The paper",
            ":class: note",
            f"{ch.citation} (`shared/papers/{ch.paper_file}`)",
            "",
            f"**What it asked.** {ch.question}",
            ":::",
        ]
    else:
        parts += [f"**What this chapter asks.** {ch.question}"]
    parts += ["", "**What this chapter reproduces**", ""]
    parts += [f"- {item}" for item in ch.reproduces]
    parts += ["", _data_line(ch, params), ""]
    parts += [
        "**Re-running it.** Download this notebook with the download button at the top of the "
        "page (or use the copy in the repository's `notebooks/`), then:",
        "",
        "```bash",
        rerun_commands(slug),
        "```",
        "",
        f"Through the book's cache instead: `python -m mmcxr.book execute --only {slug} "
        "--profile full` (add `-p data_root <root>` for real data).",
        "",
    ]
    parts += _run_details(slug, params, environment or {})
    if any(ds.credentialed for f in ch.formats if (ds := papers.dataset(f))):
        parts += [
            "",
            ":::{warning}",
            "Executed on MIMIC-CXR, MIMIC-CXR-JPG or Chest ImaGenome, this notebook shows "
            "images and report text that the data use agreements forbid publishing: keep it "
            "local. The book refuses to publish it; `make book LOCAL_ONLY=1` builds a private "
            "copy in `_build/local-only/`.",
            ":::",
        ]
    return "\n".join(parts)


def _data_line(ch: papers.Chapter, params: dict[str, Any]) -> str:
    names = ", ".join(f"`{f}`" for f in ch.formats)
    root = params.get("data_root")
    where = "the default synthetic cohort" if root is None else f"`{root}`"
    return f"**Data.** {names} format; this run read {where}."


def _run_details(slug: str, params: dict[str, Any], environment: dict[str, Any]) -> list[str]:
    """One collapsed block: the run's environment and every parameter beside its default."""
    defaults = profiles.all_profiles(slug).get("book", {})
    profile = params.get("profile", profiles.CUSTOM)
    rows = [
        "<details>",
        f"<summary>This run: profile <code>{profile}</code>, {len(params)} parameters, "
        "versions and device</summary>",
        "",
        "| parameter | value | book default |",
        "|---|---|---|",
    ]
    for name, value in params.items():
        default = _code(defaults[name]) if name in defaults else "-"
        mark = "" if name not in defaults or defaults[name] == value else " (changed)"
        rows.append(f"| `{name}` | {_code(value)}{mark} | {default} |")
    if environment:
        rows += ["", "| environment | |", "|---|---|"]
        for key, value in environment.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            rows.append(f"| {key} | {cell(str(value))} |")
    rows += ["", "</details>"]
    return rows


def profile_table(slug: str, params: dict[str, Any]) -> pd.DataFrame:
    """The parameters on which the ``smoke``, ``book`` and ``full`` profiles (or this run)
    differ, read from the notebook and its profile files, beside the values of this run."""
    shipped = profiles.all_profiles(slug)
    ignore = {"profile"}
    keys = [
        k
        for k in (shipped.get("book") or params)
        if k not in ignore
        and (
            not shipped
            or len({repr(v.get(k)) for v in shipped.values()} | {repr(params.get(k))}) > 1
        )
    ]
    rows = {k: {**{p: shipped[p].get(k) for p in shipped}, "this run": params.get(k)} for k in keys}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "parameter"
    return table.map(repr)


def open_chapter(slug: str, namespace: dict[str, Any], spec: Mapping[str, Param]) -> dict[str, Any]:
    """Start a chapter: check its parameters, record its data, display its opening.

    Call it in the first code cell as ``PARAMS = open_chapter(SLUG, globals(), SPEC)``:
    the parameters (the notebook's literal globals so far, :func:`mmcxr.env.capture_parameters`)
    are validated against ``spec`` (:func:`mmcxr.params.validate`), and text given for a list
    or a number is read as YAML *in the notebook's namespace too*, so the cells below see the
    checked values. Every ``*_root`` parameter is recorded (``data_root`` with the
    chapter's primary format) so that the book can refuse to publish credentialed data.
    """
    params = validate(env.capture_parameters(namespace), spec, where=slug)
    namespace.update(params)
    ch = papers.chapter(slug)
    fmt = params.get("data_format", ch.primary_format)
    for name, value in params.items():
        if name.endswith("_root") and (value is not None or name == "data_root"):
            record_provenance(value, fmt if name == "data_root" else None)
    environment = env.environment(params.get("device", "auto"))
    _display_markdown(header_markdown(slug, params, environment))
    return params


def source_markdown(*objects: Any) -> str:
    """The source of classes or functions of ``mmcxr`` as Markdown code blocks, each headed
    by its file and line range, so the page shows the code that ran, never a copy of it."""
    base = Path(__file__).resolve().parents[1]
    parts = []
    for obj in objects:
        lines, start = inspect.getsourcelines(obj)
        path = Path(inspect.getsourcefile(obj) or "?").resolve()
        where = path.relative_to(base) if path.is_relative_to(base) else path.name
        name = f"{obj.__module__}.{obj.__qualname__}"
        parts += [
            f"`{name}`, from `{where}` lines {start}-{start + len(lines) - 1}:",
            "",
            "```python",
            textwrap.dedent("".join(lines)).rstrip(),
            "```",
            "",
        ]
    return "\n".join(parts).rstrip() + "\n"


def show_source(*objects: Any) -> None:
    """Display the source of the method's own code (:func:`source_markdown`)."""
    _display_markdown(source_markdown(*objects))


def glue_value(name: str, value: Any, fmt: str | None = None, display: bool = False) -> None:
    """Glue a number for the prose (``{glue:text}`name```), formatted here when ``fmt`` is given.

    A thin wrapper on ``myst_nb.glue`` for two traps: numpy 2 scalars repr as
    ``np.float64(0.9)``, which the ``{glue:text}`name:.2f``` role cannot parse, and a key
    holding ``:`` is split by the role into key and format. Values are stored in the
    executed notebook, so the build needs no execution.
    """
    if not _GLUE_NAME.match(name):
        raise ValueError(f"glue name {name!r}: use letters, digits, '_', '-' or '.' (no ':')")
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()  # numpy / torch scalar -> Python number
    if fmt is not None:
        value = format(value, fmt)
    from myst_nb import glue

    glue(name, value, display=display)


@dataclass(frozen=True)
class Exercise:
    """One exercise: a question, and optionally the parameter (or profile) to change first."""

    question: str
    parameter: str | None = None
    value: Any = None
    profile: str | None = None


def _papermill_option(name: str, value: Any) -> str:
    """``-p name value`` where papermill reads the value back unchanged, else ``-y`` YAML.

    papermill types a ``-p`` value itself (``True``/``False``/``None``, then int, then
    float, else str), so a string such as ``"1"`` must go through ``-y`` to stay a string.
    """
    text = "None" if value is None else str(value)
    if (
        value is None
        or type(value) in (bool, int, float)
        or (isinstance(value, str) and not _papermill_retypes(value))
    ):
        return f"-p {name} {shlex.quote(text)}"
    return f"-y {shlex.quote(yaml.safe_dump({name: value}, default_flow_style=True).strip())}"


def _papermill_retypes(text: str) -> bool:
    if text in ("True", "False", "None"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def exercises_markdown(
    slug: str, items: Sequence[Exercise | dict[str, Any]], params: dict[str, Any]
) -> str:
    """Numbered exercises, each with the papermill line that makes its change."""
    papers.chapter(slug)
    lines = []
    for i, item in enumerate(items, 1):
        ex = item if isinstance(item, Exercise) else Exercise(**item)
        opts = []
        if ex.profile is not None:
            if ex.profile not in ("smoke", "full"):
                raise ValueError(
                    f"exercise {i}: profile must be 'smoke' or 'full', got {ex.profile!r}"
                )
            opts.append(f"-f params/{slug}/{ex.profile}.yaml")
        if ex.parameter is not None:
            if ex.parameter not in params:
                raise ValueError(
                    f"exercise {i}: {ex.parameter!r} is not a parameter of "
                    f"{slug} (known: {sorted(params)})"
                )
            opts.append(_papermill_option(ex.parameter, ex.value))
        change = f"Set `{ex.parameter}` to {_code(ex.value)}. " if ex.parameter else ""
        change += f"Run the `{ex.profile}` profile. " if ex.profile else ""
        lines.append(f"{i}. {change}{ex.question}")
        if opts:
            cmd = f"papermill {slug}.ipynb exercise-{i}.ipynb -k mmcxr {' '.join(opts)}"
            lines += ["", "   ```bash", f"   {cmd}", "   ```", ""]
    return "\n".join(lines)


def exercises(
    slug: str, items: Sequence[Exercise | dict[str, Any]], params: dict[str, Any]
) -> None:
    """Display the exercises of a chapter (its closing section); parameters are checked."""
    _display_markdown(exercises_markdown(slug, items, params))


def interactive_session() -> bool:
    """Whether a live Jupyter front end renders widgets (JupyterLab sets ``JPY_SESSION_NAME``;
    papermill, which builds the book, does not): a chapter shows its explorers only then, and
    a static figure in the book."""
    import os

    return bool(os.environ.get("JPY_SESSION_NAME"))
