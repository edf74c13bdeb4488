"""Integrated gradients completeness, sight-sensitivity circles and token scores on tiny models."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from mmcxr import explain as E


class TinyConvNet(nn.Module):
    """Image model with the book's interface: forward(batch) -> (B,) logits."""

    def __init__(self, n_out: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, n_out)
        self.n_out = n_out

    def forward(self, batch):
        h = torch.relu(self.conv(batch["image"])).mean((2, 3))
        out = self.head(h)
        return out.squeeze(1) if self.n_out == 1 else out


class BagOfEmbeddings(nn.Module):
    """Masked mean of token embeddings then a linear layer (an embedding bag, written out so
    per-token embeddings exist to attribute to)."""

    def __init__(self, vocab: int = 20, dim: int = 8) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.head = nn.Linear(dim, 1)

    def forward(self, batch):
        e = self.embedding(batch["input_ids"])
        m = batch["attention_mask"].unsqueeze(-1).float()
        return self.head((e * m).sum(1) / m.sum(1).clamp_min(1)).squeeze(1)


class KeywordDetector(nn.Module):
    """logit = sum over tokens of relu(e_t . w): only tokens whose embedding points along w
    (the planted keyword) can move the output, so gradients vanish everywhere else."""

    KEYWORD = 7

    def __init__(self, vocab: int = 20, dim: int = 6) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        w = torch.randn(dim, generator=g)
        w = w / w.norm()
        emb = torch.randn(vocab, dim, generator=g)
        emb = emb - (emb @ w)[:, None] * w - 0.5 * w  # every token points away from w ...
        emb[self.KEYWORD] = 2.0 * w  # ... except the keyword
        self.embedding = nn.Embedding.from_pretrained(emb, freeze=False)
        self.w = nn.Parameter(w)

    def forward(self, batch):
        e = self.embedding(batch["input_ids"])
        m = batch["attention_mask"].float()
        return (torch.relu(e @ self.w) * m).sum(1) - 1.0


def _text_batch():
    ids = torch.tensor([[3, 5, 7, 2, 9, 0, 0], [7, 4, 4, 11, 12, 13, 1]])
    return {"input_ids": ids, "attention_mask": (ids > 0).long(), "label": torch.tensor([1.0, 1.0])}


def test_image_ig_completeness():
    torch.manual_seed(0)
    model = TinyConvNet()
    x = torch.randn(3, 1, 12, 12)
    batch = {"image": x, "label": torch.zeros(3)}
    res = E.integrated_gradients_image(model, batch, n_steps=64)
    assert res.attributions.shape == x.shape
    with torch.no_grad():
        gap = model({"image": x}) - model({"image": torch.zeros_like(x)})
    assert res.attributions.sum((1, 2, 3)) == pytest.approx(gap, abs=1e-2 * gap.abs().max().item())
    assert res.delta.abs().max() < 1e-2 * gap.abs().max()


def test_image_ig_needs_target_for_multilabel_and_restores_mode():
    torch.manual_seed(0)
    model = TinyConvNet(n_out=3)
    model.train()
    batch = {"image": torch.randn(2, 1, 8, 8)}
    with pytest.raises(ValueError, match="target"):
        E.integrated_gradients_image(model, batch)
    res = E.integrated_gradients_image(model, batch, target=2, n_steps=32)
    with torch.no_grad():
        gap = model(batch)[:, 2] - model({"image": torch.zeros(2, 1, 8, 8)})[:, 2]
    assert res.attributions.sum((1, 2, 3)) == pytest.approx(gap, abs=1e-2)
    assert model.training  # attribution ran in eval mode and put the model back


def test_text_ig_completeness_on_embedding_bag_model():
    torch.manual_seed(0)
    model = BagOfEmbeddings()
    batch = _text_batch()
    res = E.integrated_gradients_text(model, batch, model.embedding, n_steps=64)
    assert res.attributions.shape == (2, 7, 8)
    baseline = {**batch, "input_ids": torch.zeros_like(batch["input_ids"])}
    with torch.no_grad():
        gap = model(batch) - model(baseline)
    assert res.attributions.sum((1, 2)) == pytest.approx(gap, abs=1e-4)
    assert res.per_token.shape == (2, 7)
    # the attention mask was passed through untouched: padding carries no attribution
    assert res.per_token[0, 5:].abs().max() < 1e-6


def test_text_ig_rejects_pooled_embedding_layer():
    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bag = nn.EmbeddingBag(20, 4, mode="mean")
            self.head = nn.Linear(4, 1)

        def forward(self, batch):
            return self.head(self.bag(batch["input_ids"])).squeeze(1)

    model = Pooled()
    with pytest.raises(ValueError, match="per-token"):
        E.integrated_gradients_text(model, _text_batch(), model.bag, n_steps=8)


def test_token_scores_sum_to_one_and_peak_at_planted_token():
    model = KeywordDetector()
    batch = _text_batch()
    scores = E.token_gradient_scores(model, batch, model.embedding)
    assert scores.shape == (2, 7)
    assert scores.sum(1) == pytest.approx(torch.ones(2))
    keyword_pos = (batch["input_ids"] == KeywordDetector.KEYWORD).float().argmax(1)
    assert torch.equal(scores.argmax(1), keyword_pos)
    assert scores[0, 2] > 0.99
    assert (scores[0, 5:] == 0).all()  # padding
    # the same holds for squared IG attributions
    ig = E.integrated_gradients_text(model, batch, model.embedding, n_steps=32)
    from_ig = E.token_scores(ig.attributions, batch["attention_mask"])
    assert from_ig.sum(1) == pytest.approx(torch.ones(2))
    assert torch.equal(from_ig.argmax(1), keyword_pos)


def test_token_scores_hand_example():
    rows = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [0.0, 0.0]]])  # squared sums 2, 4, 0
    assert E.token_scores(rows)[0].tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert E.token_scores(torch.zeros(1, 3, 2)).sum() == 0  # no signal, no division by zero
    with pytest.raises(ValueError, match="B, T, D"):
        E.token_scores(torch.zeros(3, 2))


def _disk(shape, cx, cy, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2


def _two_blob_map(seed=0):
    shape = (64, 64)
    rng = np.random.default_rng(seed)
    amap = rng.uniform(-0.2, 0.2, shape)
    amap[_disk(shape, 16, 20, 6)] = 1.0
    amap[_disk(shape, 45, 44, 4)] = 0.8
    return amap


@pytest.mark.parametrize("method", ["ward", "dbscan"])
def test_sight_sensitivity_recovers_two_planted_blobs(method):
    circles = E.sight_sensitivity(_two_blob_map(), 0.5, method=method)
    assert len(circles) == 2
    assert list(circles.columns) == ["x", "y", "radius", "n_points", "attribution"]
    big, small = circles.iloc[0], circles.iloc[1]  # strongest first
    assert (big.x, big.y) == pytest.approx((16, 20), abs=1.0)
    assert (small.x, small.y) == pytest.approx((45, 44), abs=1.0)
    assert big.radius == pytest.approx(6, abs=1.0)
    assert small.radius == pytest.approx(4, abs=1.0)
    assert big.n_points == _disk((64, 64), 16, 20, 6).sum()


def test_sight_sensitivity_threshold_trades_noise_for_signal():
    amap = _two_blob_map()
    amap[5, 60] = amap[60, 3] = 0.6  # isolated strong pixels: structured noise
    low = E.sight_sensitivity(amap, 0.1, method="dbscan")
    high = E.sight_sensitivity(amap, 0.9, method="dbscan")  # above the 0.8 blob
    assert low.attrs["n_points"] > high.attrs["n_points"]
    assert low.attrs["n_noise"] >= 2  # the isolated pixels are dropped, not circled
    assert len(high) == 1  # only the strongest blob survives a high sight sensitivity
    assert (high.iloc[0].x, high.iloc[0].y) == pytest.approx((16, 20), abs=1.0)


def test_sight_sensitivity_single_blob_and_explicit_count():
    amap = np.zeros((40, 40))
    amap[_disk((40, 40), 20, 15, 5)] = 1.0
    assert len(E.sight_sensitivity(amap, 0.5)) == 1  # no forced split of one region
    assert len(E.sight_sensitivity(amap, 0.5, n_clusters=2)) == 2
    assert len(E.sight_sensitivity(np.zeros((8, 8)), 0.5)) == 0
    chw = torch.from_numpy(amap)[None]
    assert len(E.sight_sensitivity(chw, 0.5)) == 1  # (1, H, W) attributions are accepted
    with pytest.raises(ValueError, match="fraction"):
        E.sight_sensitivity(amap, 1.5)
    with pytest.raises(ValueError, match="max_points"):
        E.sight_sensitivity(amap, 0.5, max_points=10)


def _renders(fig):
    assert isinstance(fig, Figure)
    fig.savefig(io.BytesIO(), format="png")


def test_overlays_render():
    img = np.random.default_rng(0).random((64, 64))
    amap = _two_blob_map()
    circles = E.sight_sensitivity(amap, 0.5)
    fig = E.plot_attribution(img, amap, circles=circles, title="IG")
    _renders(fig)
    assert len(fig.axes[0].patches) == 2
    _renders(E.plot_attribution(torch.from_numpy(img)[None], amap[::8, ::8]))  # coarse map
    tokens = ["there", "are", "degenerative", "changes", "<b>"]
    scores = [0.05, 0.05, 0.72, 0.13, 0.05]
    h = E.token_scores_html(tokens, scores, show_scores=True)
    assert h._repr_html_() == str(h)
    assert h.count("<span") == 5 and "&lt;b&gt;" in h and "0.72" in h
    with pytest.raises(ValueError, match="tokens"):
        E.token_scores_html(tokens, scores[:2])
    fig = E.plot_token_scores(tokens * 10, scores * 10, width=30)
    _renders(fig)
    assert len(fig.axes[0].texts) == 50


def test_ig_then_sight_sensitivity_finds_bright_lesions():
    """End to end: a bright-spot detector's IG map circles the two lesions planted in an image."""

    class BrightSpots(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)
            with torch.no_grad():
                self.conv.weight.fill_(1.0)
                self.conv.bias.fill_(-0.5)

        def forward(self, batch):
            return torch.relu(self.conv(batch["image"])).sum((1, 2, 3))

    rng = np.random.default_rng(0)
    img = rng.uniform(0, 0.4, (48, 48))
    img[_disk((48, 48), 12, 30, 5)] = 0.9
    img[_disk((48, 48), 36, 10, 3)] = 0.8
    res = E.integrated_gradients_image(
        BrightSpots(), {"image": torch.tensor(img, dtype=torch.float32)[None, None]}, n_steps=128
    )
    circles = E.sight_sensitivity(res.attributions[0], 0.3)
    assert len(circles) == 2
    assert (circles.iloc[0].x, circles.iloc[0].y) == pytest.approx((12, 30), abs=1.0)
    assert (circles.iloc[1].x, circles.iloc[1].y) == pytest.approx((36, 10), abs=1.0)
    assert circles.iloc[0].radius == pytest.approx(5, abs=1.0)


def test_gradient_and_grad_cam_maps_have_the_image_shape():
    torch.manual_seed(0)
    model = TinyConvNet()
    batch = {"image": torch.randn(2, 1, 12, 12)}
    grad = E.gradient_image(model, batch)
    assert grad.shape == (2, 1, 12, 12) and (grad < 0).any()  # signed, not absolute
    cam = E.grad_cam_image(model, batch, model.conv)
    assert cam.shape == (2, 1, 12, 12) and (cam >= 0).all()  # ReLU'd class activation
    assert model.training  # attribution restores the caller's mode


def test_sensitivity_sweep_circles_recover_a_planted_blob_and_lose_noise():
    amap = _two_blob_map()
    amap[5, 60] = amap[60, 3] = 0.6  # isolated strong pixels: structured noise
    lesion = _disk((64, 64), 16, 20, 6)
    circles, pointing = E.sensitivity_sweep(
        {"ig": [amap], "flat": [np.zeros((64, 64))]},
        [lesion],
        [0.3, 0.9],
        method="dbscan",
        min_samples=1,
        eps=1.5,
    )
    ig = circles[circles["method"] == "ig"].set_index("threshold")
    assert ig.loc[0.3, "hit"] == 1 and ig.loc[0.9, "hit"] == 1  # the blob is found ...
    assert ig.loc[0.3, "false_circles"] == 3  # ... with the second blob and two noise pixels
    assert ig.loc[0.9, "false_circles"] == 0  # a high sight sensitivity removes them
    flat = circles[circles["method"] == "flat"]
    assert (flat["n_circles"] == 0).all() and (flat["hit"] == 0).all()
    assert pointing.set_index("method")["pointing"].to_dict() == {"ig": 1.0, "flat": 0.0}
    with pytest.raises(ValueError, match="upsample"):
        E.sensitivity_sweep({"ig": [amap[:32]]}, [lesion], [0.5])
    with pytest.raises(ValueError, match="1 masks"):
        E.sensitivity_sweep({"ig": [amap, amap]}, [lesion], [0.5])


def _densenet_classifier():
    from mmcxr.models import build_classifier, image_encoder

    return build_classifier(
        "image", image_encoder("densenet-small"), fusion="concat_bn", hidden=8, dropout=0.2
    )


def test_cam_grid_is_the_last_blocks_resolution():
    model = _densenet_classifier()
    assert E.cam_grid(model, 64) == 2 and E.cam_grid(model, 224) == 7  # 1/32 of the image
    assert E.cam_layer(model) is model.image_encoder.features.norm5


def test_attribution_maps_give_one_map_per_image_and_method():
    torch.manual_seed(0)
    model = _densenet_classifier()
    ds = [{"image": torch.randn(1, 32, 32), "label": torch.tensor(1.0)} for _ in range(3)]
    maps = E.attribution_maps(model, ds, ig_steps=4, batch_size=2)
    assert tuple(maps) == E.IMAGE_METHODS
    assert all(len(v) == 3 and all(m.shape == (32, 32) for m in v) for v in maps.values())


def test_sensitivity_sweep_without_masks_gives_empty_tables():
    circles, pointing = E.sensitivity_sweep({"gradient": [np.ones((4, 4))]}, None, [0.5])
    assert circles.empty and pointing.empty
    assert "false_circles" in circles.columns and list(pointing.columns) == [
        "method", "image", "pointing",
    ]  # fmt: skip


def test_word_scores_name_the_words_and_the_hits():
    from mmcxr.models import KimCNN, build_classifier

    torch.manual_seed(0)
    model = build_classifier("text", None, KimCNN(6, 8, n_filters=16), fusion="concat_bn", hidden=8)
    ids = torch.tensor([[2, 3, 4, 5, 0, 0], [5, 4, 3, 0, 0, 0]])
    itos = ["<pad>", "<unk>", "a", "b", "c", "d"]
    out = E.word_scores(model, ids, itos, [{"a", "b"}, set()])
    assert out["words"].tolist() == [["a", "b", "c", "d"], ["d", "c", "b"]]
    assert out["chance"].tolist() == [0.5, 0.0] and out.loc[1, "top_hit"] == 0.0
    assert all(s.sum() == pytest.approx(1.0, abs=1e-5) for s in out["scores"])
    assert out.loc[0, "top_hit"] == float(out.loc[0, "top_word"] in {"a", "b"})
    assert ((out["prob"] > 0) & (out["prob"] < 1)).all()
