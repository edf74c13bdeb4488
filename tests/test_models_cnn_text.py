"""Paper 002's text branch: word vocabulary, Word2Vec, Kim CNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcxr.models import (
    KimCNN,
    WordVocab,
    embedding_matrix,
    load_word_vectors,
    train_word2vec,
    words,
)

CORPUS = [
    "No acute cardiopulmonary process.",
    "Right lower lobe consolidation concerning for pneumonia.",
    "Left lower lobe consolidation, likely pneumonia.",
    "Small left pleural effusion. No pneumothorax.",
    "Heart size is normal. Lungs are clear.",
] * 10


def test_words_and_vocab():
    assert words("Right-sided EFFUSION, 2 cm.") == ["right", "sided", "effusion", "cm"]
    vocab = WordVocab.build(CORPUS)
    assert vocab.itos[:2] == ["<pad>", "<unk>"]
    # frequency order, ties alphabetical: "consolidation","left","lower","lobe","no","pneumonia"
    # appear 20 times each
    assert vocab.itos[2:8] == ["consolidation", "left", "lobe", "lower", "no", "pneumonia"]
    ids = vocab.encode(["left lower zebra", "no"], length=6)
    assert ids.shape == (2, 6) and ids.dtype == torch.long
    assert ids[0, :3].tolist() == [vocab.stoi["left"], vocab.stoi["lower"], 1]
    assert ids[0, 3:].tolist() == [0, 0, 0] and ids[1, 1:].tolist() == [0] * 5
    assert vocab.encode([" ".join(["lung"] * 200)], length=140).shape == (1, 140)
    assert vocab.decode(ids[0]) == ["left", "lower", "<unk>"]
    assert torch.equal(vocab.tokenize(["left lower zebra", "no"], length=6)["token_ids"], ids)
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        vocab.encode(["ok", None])


def test_vocab_save_load(tmp_path):
    vocab = WordVocab.build(CORPUS, max_size=10)
    assert len(vocab) == 10
    vocab.save(tmp_path / "v.json")
    again = WordVocab.load(tmp_path / "v.json")
    assert again.itos == vocab.itos
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json"):
        WordVocab.load(tmp_path / "bad.json")


def test_word2vec_is_deterministic_and_initialises_the_embedding(tmp_path):
    kv = train_word2vec(CORPUS, dim=16, seed=3, epochs=5)
    kv2 = train_word2vec(CORPUS, dim=16, seed=3, epochs=5)
    assert np.array_equal(kv.vectors, kv2.vectors) and kv.index_to_key == kv2.index_to_key
    assert not np.array_equal(train_word2vec(CORPUS, dim=16, seed=4, epochs=5).vectors, kv.vectors)

    vocab = WordVocab.build(CORPUS + ["unseenword"])
    mat, coverage = embedding_matrix(vocab, kv, seed=0)
    assert mat.shape == (len(vocab), 16) and mat.dtype == torch.float32
    assert coverage == pytest.approx((len(vocab) - 3) / (len(vocab) - 2))
    assert torch.equal(mat[0], torch.zeros(16))
    model = KimCNN(len(vocab), 16, embedding_weights=mat, n_filters=4)
    for w in ["pneumonia", "effusion", "clear"]:
        assert np.array_equal(model.embedding.weight[vocab.stoi[w]].detach().numpy(), kv[w])
    assert model.embedding.weight.requires_grad  # paper 002: embedding not frozen
    assert not KimCNN(
        len(vocab), 16, embedding_weights=mat, freeze_embedding=True
    ).embedding.weight.requires_grad

    # a local vectors file (word2vec text format) gives the same vectors
    path = tmp_path / "vectors.txt"
    kv.save_word2vec_format(str(path))
    loaded = load_word_vectors(path)
    assert np.allclose(loaded["pneumonia"], kv["pneumonia"], atol=1e-5)
    with pytest.raises(FileNotFoundError):
        load_word_vectors(tmp_path / "none.txt")
    (tmp_path / "junk.txt").write_text("this is not\na vectors file\n")
    with pytest.raises(ValueError, match="junk.txt"):
        load_word_vectors(tmp_path / "junk.txt")


def test_kim_cnn_shapes_and_errors():
    torch.manual_seed(0)
    model = KimCNN(50, 12, kernel_sizes=(3, 4, 5), n_filters=7).eval()
    ids = torch.randint(0, 50, (3, 20))
    out = model({"token_ids": ids})
    assert out.shape == (3, 21) and model.out_dim == 21 and out.dtype == torch.float32
    # max-over-time pooling: output does not depend on where in the text a phrase stands
    a = torch.zeros(1, 20, dtype=torch.long)
    b = torch.zeros(1, 20, dtype=torch.long)
    a[0, 5:9] = torch.tensor([5, 6, 7, 8])  # both at least kernel-1 from the ends
    b[0, 12:16] = torch.tensor([5, 6, 7, 8])
    assert torch.allclose(model({"token_ids": a}), model({"token_ids": b}), atol=1e-6)
    with pytest.raises(ValueError, match="shorter than the widest kernel"):
        model({"token_ids": torch.zeros(1, 4, dtype=torch.long)})
    with pytest.raises(ValueError, match="embedding_weights shape"):
        KimCNN(50, 12, embedding_weights=torch.zeros(10, 12))


def test_general_vectors_train_on_the_lee_corpus_without_a_file(tmp_path):
    from mmcxr.models.cnn_text import general_vectors, lee_corpus

    assert len(lee_corpus()) == 300  # the Lee background corpus: 300 news articles
    kv = general_vectors(None, dim=8, seed=0, epochs=1)
    assert kv.vector_size == 8 and "government" in kv.key_to_index
    glove = tmp_path / "glove.txt"
    glove.write_text("lung 0.1 0.2 0.3\nheart 0.4 0.5 0.6\n")
    assert general_vectors(glove).vector_size == 3
