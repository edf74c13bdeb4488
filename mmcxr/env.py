"""Where things live and what they run on: paths, device choice, the environment report.

Every notebook's first code cell calls :func:`report` so that an executed chapter records
the package versions, the device and the parameters it ran with (the book's scorecard reads
these back).
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

KEY_PACKAGES = (
    "torch",
    "monai",
    "transformers",
    "tokenizers",
    "pydicom",
    "scikit-learn",
    "captum",
    "gensim",
    "accelerate",
    "numpy",
    "pandas",
    "matplotlib",
    "papermill",
)


def repo_root() -> Path | None:
    """The checkout this package was installed from (editable install), else None."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "mmcxr").is_dir() else None


def home() -> Path:
    """Base folder for generated data and outputs.

    ``$MMCXR_HOME`` wins; otherwise the checkout (so ``make book`` and the notebooks agree on
    one place), otherwise ``~/.cache/mmcxr`` for a non-editable install.
    """
    if os.environ.get("MMCXR_HOME"):
        return Path(os.environ["MMCXR_HOME"]).expanduser().resolve()
    return repo_root() or Path.home() / ".cache" / "mmcxr"


def data_dir() -> Path:
    """Where synthetic cohorts are generated (``<home>/data``)."""
    return home() / "data"


def output_dir(slug: str, output_dir: str | os.PathLike | None = None) -> Path:
    """A chapter's output folder: the ``output_dir`` parameter, or ``<home>/outputs/<slug>``."""
    out = Path(output_dir) if output_dir else home() / "outputs" / slug
    out.mkdir(parents=True, exist_ok=True)
    return out


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` picks CUDA, then Apple MPS, then CPU; anything else is checked and returned."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available here")
    if device not in {"cpu", "mps"} and not device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda[:N]' or 'mps', got {device!r}")
    return device


def versions(packages: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version(), "mmcxr": _mmcxr_version()}
    for name in packages:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _mmcxr_version() -> str:
    from mmcxr import __version__

    return __version__


def environment(device: str = "auto") -> dict[str, Any]:
    """The run's environment: key package versions, device, GPU, CPU threads, platform."""
    import torch

    dev = resolve_device(device)
    return {
        "versions": versions(),
        "device": dev,
        "gpu": torch.cuda.get_device_name(0) if dev.startswith("cuda") else None,
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}
_LITERAL_TYPES = (str, int, float, bool, type(None), list, tuple, dict)


def capture_parameters(namespace: dict[str, Any]) -> dict[str, Any]:
    """The notebook's parameters: every literal global defined so far.

    Called in the cell right after the ``parameters`` cell (and papermill's injected one),
    when the only user globals are the parameters, so the list never has to be typed twice.
    """
    return {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPYTHON_NAMES and isinstance(v, _LITERAL_TYPES)
    }
