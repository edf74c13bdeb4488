"""Classifiers: every kind x fusion gives logits of the right shape, reads only its keys,
and trains both branches."""

from __future__ import annotations

import pytest
import torch

from mmcxr.models import KimCNN, build_classifier, image_encoder


def _batch(b=4, size=32, seq=10, vocab=40):
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(b, 1, size, size, generator=g),
        "token_ids": torch.randint(0, vocab, (b, seq), generator=g),
        "label": torch.randint(0, 2, (b,), generator=g).float(),
    }


def _text():
    return KimCNN(40, 8, n_filters=5, dropout=0.0)


@pytest.mark.parametrize("fusion", ["late", "concat_bn"])
@pytest.mark.parametrize("kind", ["image", "text", "multimodal"])
@pytest.mark.parametrize("n_outputs", [1, 14])
def test_logit_shapes(kind, fusion, n_outputs):
    torch.manual_seed(0)
    img = image_encoder("resnet10-half") if kind != "text" else None
    txt = _text() if kind != "image" else None
    model = build_classifier(kind, img, txt, n_outputs=n_outputs, proj_dim=16, fusion=fusion)
    model.eval()
    with torch.no_grad():
        out = model(_batch())
    assert out.dtype == torch.float32
    assert out.shape == ((4,) if n_outputs == 1 else (4, n_outputs))
    dims = {"image": 256, "text": 15}
    expected = {
        "late": 16 * (2 if kind == "multimodal" else 1),
        "concat_bn": sum(d for k, d in dims.items() if kind in (k, "multimodal")),
    }[fusion]
    assert model.fused_dim == expected


def test_unimodal_models_read_only_their_keys():
    torch.manual_seed(0)
    img_model = build_classifier("image", "densenet-small", proj_dim=8).eval()
    txt_model = build_classifier("text", text_encoder=_text(), proj_dim=8).eval()
    batch = _batch()
    assert img_model.input_keys == ("image",) and txt_model.input_keys == ("token_ids",)
    with torch.no_grad():
        a = img_model(batch)
        b = img_model({**batch, "token_ids": torch.zeros_like(batch["token_ids"])})
        assert torch.equal(a, b)
        c = txt_model(batch)
        d = txt_model({**batch, "image": torch.zeros_like(batch["image"])})
        assert torch.equal(c, d)
        with pytest.raises(KeyError, match="batch\\['image'\\]"):
            img_model({"token_ids": batch["token_ids"]})


def test_multimodal_backpropagates_into_both_encoders():
    torch.manual_seed(0)
    model = build_classifier("multimodal", "resnet10-half", _text(), proj_dim=8)
    batch = _batch()
    torch.nn.functional.binary_cross_entropy_with_logits(model(batch), batch["label"]).backward()
    assert model.image_encoder.conv1.weight.grad.abs().sum() > 0
    assert model.text_encoder.embedding.weight.grad.abs().sum() > 0
    # both modalities change the output
    model.eval()
    with torch.no_grad():
        base = model(batch)
        other_img = model({**batch, "image": batch["image"].flip(0)})
        other_txt = model({**batch, "token_ids": batch["token_ids"].flip(0)})
    assert not torch.allclose(base, other_img) and not torch.allclose(base, other_txt)


def test_factory_rejects_inconsistent_arguments():
    with pytest.raises(ValueError, match="needs a text_encoder"):
        build_classifier("multimodal", "resnet10")
    with pytest.raises(ValueError, match="takes no text_encoder"):
        build_classifier("image", "resnet10", _text())
    with pytest.raises(ValueError, match="kind must be"):
        build_classifier("audio", "resnet10")
    with pytest.raises(ValueError, match="fusion must be"):
        build_classifier("image", "resnet10", fusion="attention")
    with pytest.raises(TypeError, match="out_dim"):
        build_classifier("text", text_encoder=torch.nn.Linear(2, 2))
