"""The multimodal VAE: the algebra of experts, the generalised ELBO, training through
``train.fit`` and what its latent space recovers of a planted label."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmcxr import train
from mmcxr.models import mvae


def test_poe_of_gaussians_is_the_closed_form():
    mu = torch.tensor([[[1.0, -2.0]], [[3.0, 0.5]]])  # two experts, one item, D=2
    var = torch.tensor([[[0.5, 2.0]], [[2.0, 0.25]]])
    m, logvar = mvae.poe(mu, var.log())
    precision = 1 / var[0] + 1 / var[1]
    expected_mu = (mu[0] / var[0] + mu[1] / var[1]) / precision
    torch.testing.assert_close(m, expected_mu)
    torch.testing.assert_close(logvar.exp(), 1 / precision)
    # one expert is itself; equal experts halve the variance and keep the mean
    m1, lv1 = mvae.poe(mu[:1], var[:1].log())
    torch.testing.assert_close(m1, mu[0])
    torch.testing.assert_close(lv1, var[0].log())
    m2, lv2 = mvae.poe(torch.cat([mu[:1], mu[:1]]), torch.cat([var[:1], var[:1]]).log())
    torch.testing.assert_close(m2, mu[0])
    torch.testing.assert_close(lv2.exp(), var[0] / 2)
    with pytest.raises(ValueError, match="differ"):
        mvae.poe(mu, var[:, :, :1].log())


def test_kl_to_the_prior():
    zero = mvae.kl_normal(torch.zeros(3, 4), torch.zeros(3, 4))
    torch.testing.assert_close(zero, torch.zeros(3))
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    expected = 0.5 * (1.0) + 0.5 * (2.0 - 1.0 - math.log(2.0))
    assert mvae.kl_normal(mu, logvar).item() == pytest.approx(expected)


def test_subsets_and_mixture_components():
    mods = ("frontal", "lateral", "text")
    subsets = mvae.subsets(mods)
    assert len(subsets) == 7 == len(set(subsets))
    assert subsets[0] == ("frontal",) and subsets[-1] == mods
    assert mvae.mixture_components("mopoe", mods) == subsets
    assert mvae.mixture_components("poe", mods) == [mods]
    assert mvae.mixture_components("moe", mods) == [(m,) for m in mods]
    assert len(mvae.subsets(("a", "b", "c", "d"))) == 15
    with pytest.raises(ValueError, match="joint must be one of"):
        mvae.mixture_components("mix", mods)
    with pytest.raises(ValueError, match="distinct"):
        mvae.subsets(("a", "a"))


def _tiny(joint: str = "mopoe", seed: int = 0, **kw) -> mvae.MultimodalVAE:
    torch.manual_seed(seed)
    args = dict(
        image_size=16, vocab_size=12, text_length=8, latent_dim=4, image_channels=4, text_channels=8
    )
    return mvae.build_mvae(joint=joint, **{**args, **kw})


def _planted(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Studies whose label brightens a corner of both films and puts word 5 in the report."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=g) < 0.4).float()
    frontal = torch.randn(n, 1, 16, 16, generator=g) * 0.3
    lateral = torch.randn(n, 1, 16, 16, generator=g) * 0.3
    frontal[:, :, :6, :6] += 2.0 * y.view(-1, 1, 1, 1)
    lateral[:, :, -6:, :6] += 2.0 * y.view(-1, 1, 1, 1)
    ids = torch.randint(2, 5, (n, 8), generator=g)
    ids[:, :4] = torch.where(y > 0, 5, 6).view(-1, 1)
    return {"frontal": frontal, "lateral": lateral, "token_ids": ids, "label": y}


def test_forward_returns_the_weighted_terms():
    model = _tiny(likelihood_weights={"frontal": 1.0, "lateral": 2.0, "text": 3.0}, beta=0.5)
    batch = _planted(10)
    torch.manual_seed(1)
    terms = model(batch)
    assert terms.shape == (10, 5) and model.terms == [
        "loss",
        "kl",
        "nll_frontal",
        "nll_lateral",
        "nll_text",
    ]
    recomposed = terms[:, 2] + 2 * terms[:, 3] + 3 * terms[:, 4] + 0.5 * terms[:, 1]
    torch.testing.assert_close(terms[:, 0], recomposed)
    assert torch.isfinite(terms).all() and (terms[:, 1] >= 0).all()
    size = _tiny()
    assert size.weights == {"frontal": 1.0, "lateral": 1.0, "text": 16 * 16 / 8}


@pytest.mark.parametrize("joint", mvae.JOINTS)
def test_elbo_is_finite_and_falls_on_a_tiny_batch(joint):
    model = _tiny(joint)
    batch = _planted(16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    losses = []
    for _ in range(60):
        loss = mvae.elbo_loss(model(batch))
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), (losses[:5], losses[-5:])


def test_same_seed_same_model_and_same_samples():
    a, b, c = _tiny(seed=3), _tiny(seed=3), _tiny(seed=4)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(p, q), n
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))
    batch = _planted(6)
    g1 = mvae.generate_all(a, [batch], ("lateral", "text"), seed=7)
    g2 = mvae.generate_all(b, [batch], ("lateral", "text"), seed=7)
    g3 = mvae.generate_all(a, [batch], ("lateral", "text"), seed=8)
    for k in g1:
        assert torch.equal(g1[k], g2[k])
    assert not torch.equal(g1["frontal"], g3["frontal"])
    assert g1["frontal"].shape == (6, 1, 16, 16)
    assert g1["text"].shape == (6, 8) and g1["text"].max() < 12


def test_moe_representation_is_the_mean_of_the_experts():
    model = _tiny("moe")
    batch = _planted(5)
    experts = model.encode(batch)
    z = model.represent(batch, ("frontal", "text"))
    torch.testing.assert_close(z, (experts["frontal"][0] + experts["text"][0]) / 2)
    poe_model = _tiny("mopoe")
    e = poe_model.encode(batch)
    torch.testing.assert_close(
        poe_model.represent(batch, ("frontal", "text")),
        mvae.poe(
            torch.stack([e["frontal"][0], e["text"][0]]),
            torch.stack([e["frontal"][1], e["text"][1]]),
        )[0],
    )


class _Items(torch.utils.data.Dataset):
    def __init__(self, batch):
        self.batch = batch

    def __len__(self):
        return len(self.batch["label"])

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.batch.items()}


def _fit(model, train_b, val_b, **kw):
    """``train.fit`` of an MVAE on two planted batches: the ELBO as loss, on CPU, quietly."""
    return train.fit(
        model,
        _Items(train_b),
        _Items(val_b),
        loss=mvae.elbo_loss,
        device="cpu",
        progress=False,
        **kw,
    )


@pytest.mark.slow
def test_fit_trains_it_with_per_term_curves_and_the_latent_finds_the_planted_label(tmp_path):
    """Through ``train.fit`` (the chapter's path): per-term columns in the history, and a
    linear probe on the unsupervised latent recovers the planted label on held-out items
    from every subset, well above the random baseline (the positive share)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    train_b, val_b, test_b = _planted(160, 0), _planted(48, 1), _planted(120, 2)
    model = _tiny("mopoe")
    loader = torch.utils.data.DataLoader(_Items(val_b), batch_size=48)
    run = dict(
        epochs=12,
        batch_size=32,
        lr=3e-3,
        patience=None,
        checkpoint_dir=tmp_path / "ckpt",
        seed=0,
        epoch_metrics=lambda m: mvae.elbo_terms(m, loader, "val_elbo_"),
    )
    history = _fit(model, train_b, val_b, **run)
    table = history.table
    assert {"val_elbo_kl", "val_elbo_nll_frontal", "val_elbo_nll_text"} <= set(table.columns)
    assert len(table) == 12 and table["val_loss"].iloc[-1] < table["val_loss"].iloc[0]
    assert table["val_elbo_nll_text"].iloc[-1] < table["val_elbo_nll_text"].iloc[0]
    subsets = mvae.subsets(model.names)
    z_train = mvae.subset_latents(model, [train_b], subsets)
    z_test = mvae.subset_latents(model, [test_b], subsets)
    y_train, y_test = train_b["label"].numpy(), test_b["label"].numpy()
    for s in subsets:
        clf = LogisticRegression(max_iter=1000).fit(z_train[s], y_train)
        ap = average_precision_score(y_test, clf.predict_proba(z_test[s])[:, 1])
        assert ap > y_test.mean() + 0.3, (s, ap, y_test.mean())
    # the same call on the finished checkpoint resumes nothing and changes nothing
    again = _fit(_tiny("mopoe"), train_b, val_b, **run)
    assert again.resumed_from_epoch == 12
    assert again.table["val_elbo_kl"].tolist() == table["val_elbo_kl"].tolist()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="power of two"):
        mvae.build_mvae(image_size=24, vocab_size=10, text_length=8)
    with pytest.raises(ValueError, match="multiple of 8"):
        mvae.build_mvae(image_size=16, vocab_size=10, text_length=12)
    with pytest.raises(ValueError, match="likelihood_weights"):
        mvae.build_mvae(image_size=16, vocab_size=10, text_length=8, likelihood_weights="big")
    with pytest.raises(ValueError, match="likelihood"):
        mvae.Modality("x", "x", "gaussian")


def test_fit_refuses_epoch_metrics_that_shadow_its_own_columns():
    batch = _planted(16)
    with pytest.raises(ValueError, match="which fit records itself"):
        _fit(
            _tiny(),
            batch,
            batch,
            epochs=1,
            batch_size=8,
            lr=1e-3,
            epoch_metrics=lambda m: {"val_loss": 0.0},
        )
