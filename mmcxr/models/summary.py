"""What a model is made of, as a table a chapter can show: layers, output shapes, parameter
counts and which parts are frozen.

A printed ``nn.Module`` lists layers but not the shapes that flow between them, nor how much
of the model is trained; the table here runs one example batch through the model with
forward hooks, so the shapes are the ones the model really produces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch
from torch import nn


def _shape(out: Any) -> str:
    if isinstance(out, torch.Tensor):
        return "x".join(str(d) for d in out.shape)
    if isinstance(out, Mapping):
        out = next((v for v in out.values() if isinstance(v, torch.Tensor)), None)
        return _shape(out) if out is not None else "-"
    if isinstance(out, tuple | list) and out:
        return _shape(out[0])
    return "-"


def _count(module: nn.Module) -> tuple[int, int]:
    params = list(module.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def model_summary(model: nn.Module, example: Any, *, depth: int = 2) -> pd.DataFrame:
    """One row per sub-module down to ``depth`` levels, plus a total row.

    ``example`` is what ``model(example)`` takes (a batch dict for :class:`Classifier`).
    Columns: ``layer`` (dotted name), ``type``, ``output shape`` (of the
    example batch), ``parameters``, ``trainable`` and ``frozen`` (parameters kept fixed).
    The model is run in eval mode without gradients and put back in its former mode.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    shapes: dict[str, str] = {}
    hooks = []
    named = [(name, m) for name, m in model.named_modules() if name and name.count(".") < depth]
    for name, module in named:

        def hook(_m: nn.Module, _inp: Any, out: Any, name: str = name) -> None:
            shapes.setdefault(name, _shape(out))

        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            final = model(example)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    rows = []
    for name, module in named:
        total, trainable = _count(module)
        rows.append(
            {
                "layer": name,
                "type": type(module).__name__,
                "output shape": shapes.get(name, "(not called)"),
                "parameters": total,
                "trainable": trainable,
                "frozen": total - trainable,
            }
        )
    total, trainable = _count(model)
    rows.append(
        {
            "layer": "total",
            "type": type(model).__name__,
            "output shape": _shape(final),
            "parameters": total,
            "trainable": trainable,
            "frozen": total - trainable,
        }
    )
    return pd.DataFrame(rows)
