"""A chapter's parameter profiles: the notebook's defaults (``book``) and the YAML overrides
in ``notebooks/params/<slug>/`` (``smoke``, ``full``).

Both the book builder (:mod:`mmcxr.book`, which executes a chapter under a profile) and the
chapter pages (:mod:`mmcxr.chapter_page`, which show how the profiles differ) read them, so
they live here, below both: the two never import each other. A running chapter does not
read these files to learn *which* profile it is: the executor passes that in as the
``profile`` parameter.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

from mmcxr import env

#: The profiles a chapter ships, smallest first.
PROFILES = ("smoke", "book", "full")
#: The value of the ``profile`` parameter when no executor named one (a papermill run by hand).
CUSTOM = "custom"


def root() -> Path:
    """The repository checkout (profiles are files in it)."""
    r = env.repo_root()
    if r is None:
        raise RuntimeError("mmcxr.book works from a checkout of the repository (pip install -e .)")
    return r


def notebook_path(slug: str) -> Path:
    return root() / "notebooks" / f"{slug}.ipynb"


def profile_parameters(slug: str, profile: str = "book") -> dict[str, Any]:
    """The parameter overrides of a profile (``book`` = the notebook's own defaults)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if profile == "book":
        return {}
    f = root() / "notebooks" / "params" / slug / f"{profile}.yaml"
    if not f.is_file():
        raise FileNotFoundError(f"{f}: no {profile!r} parameter file for chapter {slug!r}")
    return yaml.safe_load(f.read_text()) or {}


def literal(text: str) -> Any:
    """A Python literal from its source text; the text itself when it is not one."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def default_parameters(slug: str) -> dict[str, Any]:
    """The notebook's ``parameters`` cell, as values (the ``book`` profile)."""
    import papermill as pm

    inspected = pm.inspect_notebook(str(notebook_path(slug)))
    return {k: literal(v["default"]) for k, v in inspected.items()}


def resolved_parameters(slug: str, profile: str = "book", **overrides: Any) -> dict[str, Any]:
    """Every parameter of a chapter under a profile and overrides; ``profile`` set to it."""
    params = default_parameters(slug)
    params.update(profile_parameters(slug, profile))
    params.update(overrides)
    if "profile" in params and "profile" not in overrides:
        params["profile"] = profile
    return params


def all_profiles(slug: str) -> dict[str, dict[str, Any]]:
    """``{profile: parameters}`` for the three shipped profiles; empty outside a checkout."""
    try:
        return {p: resolved_parameters(slug, p) for p in PROFILES}
    except (RuntimeError, FileNotFoundError):
        return {}
