"""BCE and MONAI focal loss: equivalences and MONAI's alpha convention, checked numerically."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmcxr.chapters.late_fusion_reference import RECIPE
from mmcxr.models import make_loss


def _data(shape=(64,)):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(*shape, generator=g) * 3
    targets = (torch.rand(*shape, generator=g) > 0.7).float()
    return logits, targets


@pytest.mark.parametrize("shape", [(64,), (16, 14)])
def test_focal_gamma0_no_alpha_equals_bce(shape):
    logits, y = _data(shape)
    focal = make_loss("focal", alpha=None, gamma=0.0)(logits, y)
    bce = make_loss("bce")(logits, y)
    assert torch.allclose(focal, bce, atol=1e-6)


def test_monai_alpha_weights_the_positive_class():
    logits, y = _data()
    a = 0.85
    focal = make_loss("focal", alpha=a, gamma=0.0)(logits, y)
    per = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    expected = (torch.where(y == 1, a, 1 - a) * per).mean()
    assert torch.allclose(focal, expected, atol=1e-6)
    # so positives alone are scaled by alpha, negatives alone by 1 - alpha
    pos, neg = y == 1, y == 0
    f = make_loss("focal", alpha=a, gamma=0.0)
    assert torch.allclose(f(logits[pos], y[pos]), a * per[pos].mean(), atol=1e-6)
    assert torch.allclose(f(logits[neg], y[neg]), (1 - a) * per[neg].mean(), atol=1e-6)


def test_focal_known_value():
    # one positive with logit 0: p = 0.5, FL = -alpha (1-p)^gamma log p
    alpha, gamma = RECIPE["focal"]["75"]["alpha"], RECIPE["focal"]["75"]["gamma"]
    value = make_loss("focal", alpha=alpha, gamma=gamma)(torch.tensor([0.0]), torch.tensor([1.0]))
    assert value.item() == pytest.approx(alpha * 0.5**gamma * math.log(2), rel=1e-6)
    # gamma down-weights easy examples: a confident correct prediction costs far less than BCE
    easy = (torch.tensor([4.0]), torch.tensor([1.0]))
    assert make_loss("focal", gamma=2.0)(*easy) < 0.01 * make_loss("bce")(*easy)


def test_bce_pos_weight_and_gradients():
    logits, y = _data()
    logits.requires_grad_(True)
    loss = make_loss("bce", pos_weight=3.0)(logits, y)
    expected = F.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor(3.0))
    assert torch.allclose(loss, expected)
    make_loss("focal", alpha=0.25)(logits, y).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("hinge")
    with pytest.raises(ValueError, match="alpha"):
        make_loss("focal", alpha=1.5)
    with pytest.raises(ValueError, match="pos_weight"):
        make_loss("bce", alpha=0.5)
    with pytest.raises(ValueError, match="differ"):
        make_loss("focal")(torch.zeros(4), torch.zeros(4, 1))
