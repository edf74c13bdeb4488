"""Chapter parameters are checked where they enter: types, ranges, choices, YAML text."""

from __future__ import annotations

import pytest

from mmcxr.chapters import late_fusion as lf
from mmcxr.chapters import synthetic_cohort as sc
from mmcxr.params import SHARED, Param, ParameterError, common, shared, validate
from mmcxr.profiles import resolved_parameters

SPEC = {
    "frozen_layers": Param("list", items="str"),
    "epochs": Param("int", low=1),
    "lr": Param("float", low=0, high=1),
    "schedule": Param("str", choices=("linear", "constant")),
    "test_negative_fraction": Param("float", optional=True, low=0.01, high=0.99),
    "split_fractions": Param("list", items="float", length=3),
    "check": Param("bool"),
}
GOOD = {
    "frozen_layers": [],
    "epochs": 3,
    "lr": 1e-3,
    "schedule": "linear",
    "test_negative_fraction": None,
    "split_fractions": [0.6, 0.2, 0.2],
    "check": True,
}


def test_good_parameters_pass_unchanged_and_ints_become_floats():
    out = validate({**GOOD, "lr": 1}, SPEC)
    assert out == {**GOOD, "lr": 1.0} and isinstance(out["lr"], float)


def test_papermill_text_is_read_as_yaml():
    # `-p frozen_layers '["conv1","layer1"]'` and `-p epochs 5` as papermill may pass them
    out = validate(
        {**GOOD, "frozen_layers": '["conv1", "layer1"]', "epochs": "5", "check": "false"}, SPEC
    )
    assert out["frozen_layers"] == ["conv1", "layer1"]
    assert out["epochs"] == 5 and out["check"] is False
    assert validate({**GOOD, "frozen_layers": "[conv1, layer2]"}, SPEC)["frozen_layers"] == [
        "conv1",
        "layer2",
    ]


def test_a_bad_value_names_the_parameter_what_it_got_and_how_to_pass_it():
    with pytest.raises(ParameterError) as err:
        validate({**GOOD, "frozen_layers": "conv1", "epochs": 0, "schedule": "cosine"}, SPEC)
    msg = str(err.value)
    assert "frozen_layers" in msg and "'conv1'" in msg and "must be a list" in msg
    assert "-y 'frozen_layers: [conv1]'" in msg, "the YAML way to pass a list"
    assert "epochs" in msg and "at least 1" in msg and "-p epochs 1" in msg
    assert "schedule" in msg and "one of ['linear', 'constant']" in msg


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("split_fractions", [0.5, 0.5], "3 items"),
        ("split_fractions", [0.5, "a", 0.2], "float items"),
        ("lr", 2.0, "at most 1"),
        ("lr", float("nan"), "NaN"),
        ("test_negative_fraction", 1.5, "at most 0.99"),
        ("epochs", True, "an int"),
        ("epochs", None, "None"),
    ],
)
def test_each_rule_bites(name, value, problem):
    with pytest.raises(ParameterError, match=problem):
        validate({**GOOD, name: value}, SPEC)


def test_undeclared_and_missing_parameters_are_errors():
    with pytest.raises(ParameterError, match=r"not declared in its specification \['typo'\]"):
        validate({**GOOD, "typo": 1}, SPEC)
    missing = {k: v for k, v in GOOD.items() if k != "epochs"}
    with pytest.raises(ParameterError, match=r"declared but not set \['epochs'\]"):
        validate(missing, SPEC)


@pytest.mark.parametrize("chapter", [lf, sc], ids=lambda m: m.SLUG)
def test_every_profile_of_a_chapter_passes_its_spec(chapter):
    for profile in ("smoke", "book", "full"):
        params = resolved_parameters(chapter.SLUG, profile)
        assert validate(params, chapter.PARAMETERS, where=chapter.SLUG)["profile"] == profile


def test_a_shared_specification_is_the_same_in_every_chapter_that_has_it():
    from mmcxr.chapters import alignment, meems, multimodal_vae, small_data

    chapters = [alignment, lf, meems, multimodal_vae, small_data, sc]
    for name, spec in SHARED.items():
        users = [c.SLUG for c in chapters if name in c.PARAMETERS]
        assert len(users) >= 2, f"{name}: declared by {users} only"
        assert all(c.PARAMETERS[name] == spec for c in chapters if name in c.PARAMETERS), name
    assert list(shared("lr", "epochs")) == ["lr", "epochs"]
    with pytest.raises(KeyError):
        shared("no_such_parameter")


def test_common_parameters_check_the_profile_name():
    spec = common()
    good = {"data_root": None, "seed": 0, "device": "cpu", "output_dir": None, "profile": "book"}
    assert validate(good, spec) == good
    with pytest.raises(ParameterError, match="profile"):
        validate({**good, "profile": "paper"}, spec)
