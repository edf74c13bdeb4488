"""The Show-Attend-Tell captioner: shapes, beam search against brute force, caption metrics
on known strings, the loss's padding and the training loop's early stopping."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from mmcxr.models import captioner as cap


def test_vocab_round_trip_and_errors():
    vocab = cap.CaptionVocab.build(["No effusion. No pneumothorax!", "Small effusion."])
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<start>", "<end>"]
    assert vocab.itos[4] in ("effusion", "no")  # the two words seen twice come first
    ids = vocab.encode(["small effusion, new word"], max_words=3)
    assert ids.shape == (1, 5)
    assert ids[0, 0] == 2 and ids[0, 4] == 3
    assert vocab.decode(ids[0]) == ["small", "effusion", "new"][:2] + ["<unk>"]
    assert cap.CaptionVocab.build(["a b c d e f"], max_size=6).itos[4:] == ["a", "b"]
    with pytest.raises(ValueError, match="must start"):
        cap.CaptionVocab(["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="max_words"):
        vocab.encode(["x"], max_words=0)


def _model(vocab=12, enc=6, **kw):
    torch.manual_seed(0)
    return cap.ShowAttendTell(vocab, enc, embed_dim=5, dec_dim=7, att_dim=4, dropout=0.0, **kw)


def test_forward_and_generate_shapes():
    m = _model()
    batch = {"features": torch.randn(3, 9, 6), "tokens": torch.randint(0, 12, (3, 8))}
    assert m(batch).shape == (3, 7, 12)
    out = m.generate(batch["features"], beam=3, max_len=5)
    assert len(out.tokens) == 3 and out.hidden.shape == (3, 7)
    for toks, a in zip(out.tokens, out.alphas, strict=True):
        assert len(toks) <= 5 and a.shape == (len(toks), 9)
        assert np.allclose(a.sum(1), 1.0, atol=1e-5)  # attention is a distribution
    with pytest.raises(ValueError, match="embedding is"):
        _model(embedding=torch.zeros(3, 5))


def _table_step(table: dict[tuple[int, ...], list[float]], v: int):
    """A hand-made model: next-word log-probabilities looked up by the sequence so far."""

    def step(prev, state):
        hist = state["hist"]
        new_hist = torch.cat([hist, prev.unsqueeze(1).float()], 1)
        rows = []
        for h in new_hist.long().tolist():
            probs = table.get(tuple(h[2:]), [1.0 / v] * v)  # after the zero and <start>
            rows.append(np.log(np.asarray(probs) + 1e-12))
        logp = torch.tensor(np.array(rows), dtype=torch.float32)
        return logp, {"hist": new_hist, "h": new_hist[:, -1:]}, torch.ones(len(prev), 1)

    return step


def _brute_force(table, v, eos, max_len):
    best, best_seq = -math.inf, None
    for n in range(0, max_len + 1):
        for seq in itertools.product([w for w in range(v) if w != eos], repeat=n):
            s, hist = 0.0, ()
            for w in (*seq, eos):
                s += math.log(table.get(hist, [1.0 / v] * v)[w] + 1e-12)
                hist = (*hist, w)
            if s > best:
                best, best_seq = s, list(seq)
    return best, best_seq


def test_beam_search_returns_the_best_scoring_sequence():
    # words 0..3, <end> = 3. Greedy takes word 0 first (0.5) but every continuation of 0 is
    # flat; word 1 (0.4) leads to a near-certain <end>: the best sequence is [1].
    v, eos = 4, 3
    table = {(): [0.5, 0.4, 0.1, 0.0], (0,): [0.3, 0.3, 0.2, 0.2], (1,): [0.0, 0.0, 0.02, 0.98]}
    state = {"hist": torch.zeros(1, 1), "h": torch.zeros(1, 1)}
    greedy = cap.beam_search(_table_step(table, v), state, bos=9, eos=eos, beam=1, max_len=3)
    best = cap.beam_search(_table_step(table, v), state, bos=9, eos=eos, beam=3, max_len=3)
    score, seq = _brute_force(table, v, eos, 3)
    assert greedy.tokens[0][0] == 0  # greedy is fooled
    assert best.tokens[0] == seq == [1]
    assert best.scores[0] == pytest.approx(score, abs=1e-4)
    assert best.scores[0] > greedy.scores[0]


def test_beam_search_is_batched_and_forces_an_end():
    v, eos = 3, 2
    table = {(): [0.9, 0.1, 0.0]}  # never ends by itself at the first step
    state = {"hist": torch.zeros(2, 1), "h": torch.zeros(2, 1)}
    out = cap.beam_search(_table_step(table, v), state, bos=9, eos=eos, beam=2, max_len=2)
    assert len(out.tokens) == 2 and out.tokens[0] == out.tokens[1]
    assert all(len(t) <= 2 for t in out.tokens)
    with pytest.raises(ValueError):
        cap.beam_search(_table_step(table, v), state, bos=9, eos=eos, beam=0)


def test_word_iou_and_bleu_on_known_strings():
    assert cap.word_iou("no acute process".split(), "no acute disease".split()) == 0.5
    assert cap.word_iou([], []) == 1.0
    ref = "the cat is on the mat".split()
    assert cap.bleu4([ref], [ref]) == pytest.approx(1.0)
    # every n-gram precision is 1, brevity penalty exp(1 - 6/4)
    assert cap.bleu4([ref], [ref[:4]]) == pytest.approx(math.exp(-0.5))
    assert cap.bleu4([ref], [["a", "b", "c", "d"]]) == 0.0
    with pytest.raises(ValueError):
        cap.bleu4([ref], [])


def test_label_agreement_counts_label_decisions():
    def labeler(text):
        return {
            "Edema": 1.0 if "edema" in text else 0.0,
            "Fracture": -1.0 if "maybe" in text else math.nan,
        }

    gen, truth = ["edema", "clear"], ["edema maybe", "clear"]
    assert cap.label_agreement(gen, truth, labeler, ["Edema", "Fracture"]) == pytest.approx(0.75)
    assert math.isnan(cap.label_agreement([], [], labeler, ["Edema"]))


def test_caption_loss_ignores_padding():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 6)
    short = torch.tensor([[2, 4, 5, 3, 0]])
    loss = cap.caption_loss(logits, short)
    manual = torch.nn.functional.cross_entropy(logits[0, :3], torch.tensor([4, 5, 3]))
    assert loss.item() == pytest.approx(manual.item())


def _caption_ds(n=12):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(n, 4, 6, generator=g)
    tokens = torch.randint(4, 12, (n, 6), generator=g)
    tokens[:, 0], tokens[:, -1] = 2, 3
    return cap.caption_dataset(feats, tokens)


def test_fit_captioner_trains_through_train_fit_and_resumes(tmp_path):
    ds = _caption_ds()
    assert torch.equal(ds.labels.long(), ds.text["tokens"])  # the word ids are the labels
    m = _model()
    hist = cap.fit_captioner(m, ds, ds, epochs=6, batch_size=4, lr=0.01, patience=5,
                             device="cpu", epoch_metrics=lambda model: {"x": 1.0})  # fmt: skip
    t = hist.table
    assert t["train_loss"].iloc[-1] < t["train_loss"].iloc[0]
    assert t["val_loss"].notna().all() and (t["x"] == 1.0).all()
    # vocabulary scores are not one logit per label: no AUROC or accuracy, and no crash
    assert t["val_auroc"].isna().all() and t["val_accuracy"].isna().all()
    assert 1 <= hist.best_epoch <= len(t)
    # a checkpointed run that is interrupted resumes where it stopped
    part = cap.fit_captioner(_model(), ds, ds, epochs=4, batch_size=4, lr=0.01, device="cpu",
                             checkpoint_dir=tmp_path, seed=1)  # fmt: skip
    assert part.resumed_from_epoch == 0
    again = cap.fit_captioner(_model(), ds, ds, epochs=4, batch_size=4, lr=0.01, device="cpu",
                              checkpoint_dir=tmp_path, seed=1)  # fmt: skip
    assert again.resumed_from_epoch == len(part.table)
    with pytest.raises(ValueError):
        cap.fit_captioner(_model(), ds, ds, epochs=0)
