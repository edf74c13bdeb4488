"""Chapter parameters, checked where they enter.

papermill's ``-p name value`` passes text, typed only by papermill's own guess: a list
given as ``-p frozen_layers '["conv1"]'`` arrives as a *string*, and would fail far from
its cause (deep in training, "no sub-module named '['"). Each chapter therefore declares
what every parameter must be (:class:`Param`) and :func:`validate` checks the notebook's
values when it starts. Text where a number, list or mapping is expected is read as YAML
(so ``-p frozen_layers '[conv1, layer1]'`` just works); anything still wrong stops the
chapter with a message naming the parameter, what it got, and how to pass it.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import yaml

from mmcxr.profiles import CUSTOM, PROFILES

_KINDS = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


class ParameterError(ValueError):
    """A chapter parameter of the wrong type, range or value."""


@dataclass(frozen=True)
class Param:
    """What one parameter must be.

    ``kind``: "int", "float" (ints accepted), "str", "bool", "list" or "dict";
    ``optional``: None allowed; ``choices``: the allowed values; ``low``/``high``: an
    inclusive range (of the value, or of every item of a list); ``items``: the kind of a
    list's items; ``length``: a list's exact length; ``doc``: one line for the message.
    """

    kind: str
    optional: bool = False
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    items: str | None = None
    length: int | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        for k in (self.kind, self.items or "int"):
            if k not in _KINDS:
                raise ValueError(f"Param kind must be one of {sorted(_KINDS)}, got {k!r}")


def _is(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list | tuple)
    return isinstance(value, _KINDS[kind])


def _example(name: str, spec: Param, value: Any) -> str:
    """How to pass a value of this parameter to papermill."""
    if spec.kind == "list" and isinstance(value, str) and _problem([value], spec) is None:
        sample = [value]  # one item given bare: the list that holds it
    else:
        sample = _sample(spec)
    if spec.kind in ("list", "dict"):
        text = yaml.safe_dump({name: sample}, default_flow_style=True).strip().strip("{}")
        return f"-y {shlex.quote(text)}"
    return f"-p {name} {shlex.quote(str(sample))}"


def _sample(spec: Param) -> Any:
    if spec.choices:
        return spec.choices[0]
    if spec.kind == "list":
        return [_sample(Param(spec.items or "str"))] * (spec.length or 2)
    low = spec.low if spec.low is not None else 1
    return {"int": int(low), "float": float(low), "str": "text", "bool": True}.get(
        spec.kind, {"key": 1}
    )


def _coerce(value: Any, spec: Param) -> Any:
    """Text read as YAML where the parameter is not text (papermill ``-p`` passes text)."""
    if isinstance(value, str) and spec.kind != "str":
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    if spec.kind == "float" and _is(value, "int"):
        return float(value)
    if spec.kind == "list" and isinstance(value, tuple):
        return list(value)
    return value


def _problem(value: Any, spec: Param) -> str | None:
    if value is None:
        return None if spec.optional else "must not be None"
    if not _is(value, spec.kind):
        return f"must be {'a ' + spec.kind if spec.kind != 'int' else 'an int'}"
    if spec.choices is not None and value not in spec.choices:
        return f"must be one of {list(spec.choices)}"
    values = value if spec.kind == "list" else [value]
    if spec.kind == "list":
        if spec.length is not None and len(value) != spec.length:
            return f"must hold {spec.length} items"
        if spec.items and not all(_is(v, spec.items) for v in value):
            return f"must hold {spec.items} items only"
    for v in values:
        if isinstance(v, int | float) and not isinstance(v, bool):
            if isinstance(v, float) and math.isnan(v):
                return "must not be NaN"
            if spec.low is not None and v < spec.low:
                return f"must be at least {spec.low:g}"
            if spec.high is not None and v > spec.high:
                return f"must be at most {spec.high:g}"
    return None


def validate(
    params: Mapping[str, Any], spec: Mapping[str, Param], *, where: str = "chapter"
) -> dict[str, Any]:
    """The parameters, checked against ``spec`` and with text read as YAML where needed.

    Every parameter must be declared in ``spec`` and every declared one present (a typo in
    either is caught here, not later). Raises :class:`ParameterError` listing every bad
    parameter: its name, the value received, what it must be and how to pass it.
    """
    unknown = sorted(set(params) - set(spec))
    missing = sorted(set(spec) - set(params))
    if unknown or missing:
        raise ParameterError(
            f"{where}: parameters not declared in its specification {unknown}, "
            f"declared but not set {missing}"
        )
    out, errors = {}, []
    for name, value in params.items():
        s = spec[name]
        coerced = _coerce(value, s)
        problem = _problem(coerced, s)
        if problem:
            what = f" ({s.doc})" if s.doc else ""
            errors.append(
                f"  {name}{what} {problem}; got {value!r} ({type(value).__name__}). "
                f"Pass it as: {_example(name, s, coerced)}"
            )
        out[name] = coerced
    if errors:
        raise ParameterError(f"{where}: bad parameters\n" + "\n".join(errors))
    return out


def common(*, formats: Sequence[str] | None = None) -> dict[str, Param]:
    """The parameters every chapter has: its data, seeds, device, output and profile
    (``data_format`` only for a chapter that reads more than one release layout)."""
    fmt = {"data_format": Param("str", choices=tuple(formats))} if formats else {}
    return {
        "data_root": Param("str", optional=True, doc="a real release's root"),
        **fmt,
        "seed": Param("int", low=0),
        "device": Param("str"),
        "output_dir": Param("str", optional=True),
        "profile": Param("str", choices=(*PROFILES, CUSTOM), doc="set by the book's executor"),
    }


#: Specifications several chapters declare alike, each the same in every chapter that has
#: the parameter (one whose bounds differ between chapters stays in its chapter); a chapter
#: takes the ones it has with :func:`shared`.
SHARED: Mapping[str, Param] = MappingProxyType(
    {
        "split_fractions": Param("list", items="float", length=3, low=0, high=1),
        "mlm_epochs": Param("int", low=0),
        "mlm_lr": Param("float", low=0, high=1),
        "epochs": Param("int", low=1),
        "lr": Param("float", low=0, high=1),
        "weight_decay": Param("float", low=0),
        "patience": Param("int", low=1),
        "claim_tol": Param("float", low=0, high=1),
        "num_workers": Param("int", low=0),
    }
)


def shared(*names: str) -> dict[str, Param]:
    """The :data:`SHARED` specifications of ``names``, in that order."""
    return {name: SHARED[name] for name in names}


def synthetic(
    *, image_difficulty: bool = False, report_difficulty: bool = False
) -> dict[str, Param]:
    """The synthetic cohort's recipe parameters (``synth_*``); ``image_difficulty`` and
    ``report_difficulty`` add the generator's difficulty knobs (``SynthConfig``) for a chapter
    that sets them (:mod:`mmcxr.calibration`)."""
    knobs = {
        "synth_image_difficulty": (image_difficulty, "image conspicuity, 0 as drawn .. 1 hardest"),
        "synth_report_difficulty": (report_difficulty, "report informativeness, 0 .. 1 least"),
    }
    return {
        "synth_n": Param("int", low=1),
        "synth_seed": Param("int", low=0),
        "synth_image_size": Param("int", low=16, high=4096),
        **{k: Param("float", low=0, high=1, doc=doc) for k, (on, doc) in knobs.items() if on},
    }
