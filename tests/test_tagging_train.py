"""The tagger end to end on a tiny synthetic corpus: padding, learning, early stopping,
determinism and the saved bundle."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from pipeline.data.sentences import Sentence
from pipeline.evaluate.tagging import tagging_metrics
from pipeline.train import tagging as T

HP = {
    "word_dim": 8, "char_dim": 4, "char_filters": 6, "char_window": 3, "hidden": 8,
    "dropout": 0.5, "crf": True, "char_encoder": "cnn", "lowercase": True, "embeddings": None,
    "char_hidden": 5, "layers": 1, "residual": False, "word_dropout": 0.0,
    "lexical_dim": 0, "lexical_bins": 4,
    "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "decay": 0.05, "clip": 5.0,
    "batch_size": 4, "max_epochs": 2, "patience": 5, "eval_batch_size": 16,
    "singleton_unk": 0.5, "threads": 1, "early_stopping": True, "average_last": 1,
    "label_smoothing": 0.0, "aux_weight": 0.0, "min_updates": 0,
}
# The stronger variant's components, all switched on (small sizes).
DEEP = {**HP, "crf": False, "char_encoder": "bilstm", "layers": 2, "residual": True,
        "word_dropout": 0.2, "optimizer": "adam", "lr": 0.01, "label_smoothing": 0.1,
        "aux_weight": 1.0, "early_stopping": False, "average_last": 2, "max_epochs": 3}
LEXICON = {"the": "DET", "a": "DET", "cat": "NOUN", "dog": "NOUN", "Rome": "PROPN",
           "sees": "VERB", "runs": "VERB", "big": "ADJ", ".": "PUNCT"}


def corpus(n: int, seed: int) -> list[Sentence]:
    """Sentences whose tags follow from the words; capitalised unknown words are PROPN."""
    rng = random.Random(seed)
    words = sorted(LEXICON)
    out = []
    for i in range(n):
        tokens = [rng.choice(words) for _ in range(rng.randint(1, 9))]
        number = ["Number=Plur" if t.endswith("s") else "_" for t in tokens]
        out.append(Sentence(f"s{seed}-{i}", tokens, [LEXICON[t] for t in tokens],
                            aux={"feats": number}))
    return out


def no_log(metrics: dict[str, float], step: int) -> None:
    assert {"train_loss", "lr", "epoch_seconds"} <= metrics.keys()


def train(hp: dict, seed: int, scheme: str = "tags"):
    return T.train_tagger(corpus(40, 0), corpus(10, 1), scheme, hp, seed,
                          torch.device("cpu"), no_log)


@pytest.mark.parametrize("hp", [HP, {**HP, "crf": False}, DEEP],
                         ids=["ma-hovy", "softmax", "deep"])
def test_padding_does_not_change_scores_or_paths(hp):
    torch.manual_seed(0)
    bundle = T.rebuild(*T.build_vocab(corpus(40, 0), hp), hp)
    model = bundle.model.eval()
    sentences = corpus(5, 2) + [Sentence("long", ["Rome"] * 12, ["PROPN"] * 12)]
    data = T.encode(bundle, sentences, with_tags=True)
    together = T.make_batch(data, range(len(sentences)))
    scores, path = model.emissions(together), model.decode(together)
    for i, s in enumerate(sentences):
        alone = T.make_batch(data, [i])
        n = len(s.tokens)
        assert torch.allclose(model.emissions(alone)[0], scores[i, :n], atol=1e-5)
        assert torch.equal(model.decode(alone)[0], path[i, :n])


def test_learns_and_predicts_in_input_order():
    hp = {**HP, "max_epochs": 15}
    bundle, history = train(hp, seed=0)
    assert max(history["dev_accuracy"]) > 0.95
    dev = corpus(10, 1)  # the best epoch's weights are the ones returned
    best = tagging_metrics([s.tags for s in dev], T.predict(bundle, dev, 3), "tags")
    assert best["accuracy"] == max(history["dev_accuracy"])
    assert history["epoch"] == list(range(1, len(history["epoch"]) + 1))
    test = corpus(30, 3) + [Sentence("empty", [], [])]
    pred = T.predict(bundle, test, batch_size=7)
    one_by_one = [T.predict(bundle, [s], batch_size=1)[0] for s in test]
    assert pred == one_by_one and pred[-1] == []
    assert sum(p == s.tags for p, s in zip(pred, test, strict=True)) >= 25
    # unknown capitalised word: the char CNN has seen "Rome" as the only capitalised word
    assert T.predict(bundle, [Sentence("x", ["the", "Paris", "runs"], ["?"] * 3)], 1)


def test_entities_scheme_and_softmax_variant_train():
    ents = {"the": "O", "a": "O", "cat": "O", "dog": "O", "Rome": "B-LOC", "sees": "O",
            "runs": "O", "big": "O", ".": "O"}
    data = [Sentence(s.id, s.tokens, [ents[t] for t in s.tokens]) for s in corpus(30, 0)]
    seen: list[int] = []
    _, history = T.train_tagger(data, data[:8], "iob2", {**HP, "crf": False}, 0,
                                torch.device("cpu"), lambda m, step: seen.append(step))
    assert seen == [1, 2] and len(history["dev_f1"]) == 2
    assert history["dev_score"] == history["dev_f1"]


def test_early_stopping_stops_after_patience_epochs():
    hp = {**HP, "lr": 0.0, "max_epochs": 10, "patience": 2}  # nothing improves after epoch 1
    _, history = train(hp, seed=0)
    assert len(history["epoch"]) == 3


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path):
    paths = [tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt"]
    for path, seed in zip(paths, [1, 1, 2], strict=True):
        bundle, _ = train(HP, seed)
        T.save_bundle(path, bundle)
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b
    wa, wc = (T.load_bundle(p).model.state_dict() for p in (paths[0], paths[2]))
    assert not torch.equal(wa["lstm.weight_hh_l0"], wc["lstm.weight_hh_l0"])


def test_bundle_round_trip_predicts_the_same(tmp_path):
    bundle, _ = train(HP, seed=0)
    T.save_bundle(tmp_path / "m.pt", bundle)
    loaded = T.load_bundle(tmp_path / "m.pt")
    test = corpus(12, 5)
    assert T.predict(loaded, test, 4) == T.predict(bundle, test, 4)
    assert (loaded.words, loaded.chars, loaded.tags, loaded.hp) == (
        bundle.words, bundle.chars, bundle.tags, {k: HP[k] for k in T.MODEL_KEYS})


def test_hp_keys_are_required():
    hp = dict(HP)
    del hp["clip"]
    with pytest.raises(KeyError, match="clip"):
        train(hp, seed=0)
    with pytest.raises(ValueError, match="scheme"):
        train(HP, 0, scheme="bio")


def test_pretrained_vectors_initialise_the_word_embeddings(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("2 8\nCat " + " ".join(["0.5"] * 8) + "\nthe " + " ".join(["-1"] * 8) + "\n")
    hp = {**HP, "embeddings": str(path), "lr": 0.0, "max_epochs": 1}  # lr 0: weights stay put
    bundle, _ = train(hp, seed=0)
    weight = bundle.model.embed.weight
    assert torch.equal(weight[bundle.word_index["cat"]], torch.full((8,), 0.5))
    assert torch.equal(weight[bundle.word_index["the"]], torch.full((8,), -1.0))
    assert weight[T.PAD].abs().sum() == 0


def test_equal_length_batches_cover_every_sentence_once_in_seeded_order():
    lengths = np.array([5, 1, 9, 5, 2, 8, 3, 3, 7, 1, 6, 5, 5, 5, 5])
    batches = T.equal_length_batches(lengths, 3, np.random.default_rng(0))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(set(lengths[b])) == 1 for b in batches)  # one length per batch
    assert sorted(len(b) for b in batches if lengths[b[0]] == 5) == [3, 3]  # six 5s: 3 + 3
    assert all(len(b) <= 3 for b in batches)
    assert batches == T.equal_length_batches(lengths, 3, np.random.default_rng(0))
    assert batches != T.equal_length_batches(lengths, 3, np.random.default_rng(1))


@pytest.mark.parametrize("min_updates", [0, 1, 23, 24, 25, 500])
def test_passes_per_epoch_reach_min_updates_with_the_fewest_passes(min_updates):
    lengths = np.array([5, 1, 9, 5, 2, 8, 3, 3, 7, 1, 6, 5, 5, 5, 5])
    hp = {**HP, "batch_size": 3, "max_epochs": 2, "min_updates": min_updates}
    per_pass = len(T.equal_length_batches(lengths, 3, np.random.default_rng(0)))  # 12
    passes = T.passes_per_epoch(lengths, hp)
    assert passes >= 1 and hp["max_epochs"] * passes * per_pass >= min_updates
    assert passes == 1 or hp["max_epochs"] * (passes - 1) * per_pass < min_updates


def test_min_updates_trains_a_tiny_set_longer_and_stays_deterministic():
    hp = {**HP, "crf": False, "early_stopping": False, "max_epochs": 1, "lr": 0.05}
    sentences = corpus(40, 0)

    def train_accuracy(bundle) -> float:
        return tagging_metrics([s.tags for s in sentences],
                               T.predict(bundle, sentences, 16), "tags")["accuracy"]

    once, _ = train(hp, seed=0)  # one pass: about 13 updates
    longer, history = train({**hp, "min_updates": 120}, seed=0)
    again, _ = train({**hp, "min_updates": 120}, seed=0)
    assert history["epoch"] == [1]  # the schedule keeps its one epoch
    assert train_accuracy(longer) > train_accuracy(once) + 0.1
    assert all(torch.equal(a, b) for a, b in zip(
        longer.model.state_dict().values(), again.model.state_dict().values(), strict=True))


def test_char_bilstm_runs_of_equal_length_give_the_packed_final_states():
    """The char BiLSTM runs once per group of equal-length forms (no packing); its result
    must be the two final states a packed run over all forms gives."""
    torch.manual_seed(0)
    bundle = T.rebuild(*T.build_vocab(corpus(40, 0), DEEP), DEEP)
    encoder = bundle.model.chars.eval()
    sentences = [Sentence("s", ["a", "Rome", "cats", "the", "Paris", "x"], ["X"] * 6)]
    batch = T.make_batch(T.encode(bundle, sentences, with_tags=False), [0])
    assert [n for n, _ in batch.char_runs] == sorted({1, 4, 3, 5})
    lengths = (batch.chars != T.PAD).sum(1)
    packed = pack_padded_sequence(encoder.embed(batch.chars), lengths, batch_first=True,
                                  enforce_sorted=False)
    final = encoder.lstm(packed)[1][0]
    expected = torch.cat([final[0], final[1]], dim=1)
    assert torch.allclose(encoder(batch.chars, batch.char_runs), expected, atol=1e-6)


def test_deep_variant_learns_with_its_aux_head_and_is_deterministic(tmp_path):
    bundle, history = train({**DEEP, "max_epochs": 12}, seed=0)
    assert bundle.aux == {"feats": ["Number=Plur", "_"]}
    assert set(bundle.model.aux) == {"feats"}
    assert "upper.0.weight_hh_l0" in bundle.model.state_dict()
    assert "dev_accuracy" not in history  # no early stopping: dev joined the training data
    test = corpus(30, 3)
    pred = T.predict(bundle, test, 8)
    assert sum(p == s.tags for p, s in zip(pred, test, strict=True)) >= 25
    paths = [tmp_path / f"{i}.pt" for i in range(3)]
    for path, seed in zip(paths, [1, 1, 2], strict=True):
        T.save_bundle(path, train(DEEP, seed)[0])
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()
    assert T.load_bundle(paths[0]).aux == {"feats": ["Number=Plur", "_"]}


def test_without_aux_weight_no_aux_head_is_built():
    bundle, _ = train({**DEEP, "aux_weight": 0.0}, seed=0)
    assert bundle.aux == {} and len(bundle.model.aux) == 0


def test_aux_head_adds_its_weighted_loss():
    torch.manual_seed(0)
    hp = {**DEEP, "dropout": 0.0}
    train_data = corpus(40, 0)
    bundle = T.rebuild(*T.build_vocab(train_data, hp), hp, T.aux_vocab(train_data, hp))
    batch = T.make_batch(T.encode(bundle, corpus(6, 2), with_tags=True), range(6))
    model = bundle.model.eval()
    alone, both, twice = (model.loss(batch, 0.0, w) for w in (0.0, 1.0, 2.0))
    assert both > alone and torch.allclose(twice - alone, 2 * (both - alone))
    assert model.loss(batch, 0.1, 0.0) != alone  # label smoothing changes the softmax loss


def test_fixed_budget_trains_on_dev_too_and_averages_the_last_epochs():
    dev = corpus(10, 1) + [Sentence("new", ["Paris"], ["PROPN"], aux={"feats": ["_"]})]
    runs = {(epochs, k): T.train_tagger(corpus(40, 0), dev, "tags",
                                        {**DEEP, "max_epochs": epochs, "average_last": k}, 0,
                                        torch.device("cpu"), no_log)[0]
            for epochs, k in [(2, 1), (3, 1), (3, 2)]}
    assert "paris" in runs[(3, 2)].word_index
    second, third = (runs[key].model.state_dict() for key in [(2, 1), (3, 1)])
    averaged = runs[(3, 2)].model.state_dict()
    for name, value in averaged.items():
        assert torch.equal(value, torch.stack([second[name], third[name]]).mean(dim=0)), name
    with pytest.raises(ValueError, match="average_last"):
        train({**DEEP, "early_stopping": True}, seed=0)


def test_transfer_starts_from_the_source_models_lower_layers():
    pos, _ = train({**DEEP, "aux_weight": 0.0, "max_epochs": 2}, seed=0)
    ents = {t: "B-LOC" if t == "Rome" else "O" for t in LEXICON}
    ner = [Sentence(s.id, s.tokens[:3] + ["Oslo"], [ents[t] for t in s.tokens[:3]] + ["B-LOC"])
           for s in corpus(20, 7)]
    still = {**DEEP, "lr": 0.0, "word_dropout": 0.0, "aux_weight": 0.0, "max_epochs": 1,
             "average_last": 1}  # lr 0: the weights stay where transfer put them
    bundle, _ = T.train_tagger(ner, ner[:4], "iob2", still, 1, torch.device("cpu"), no_log,
                               init_from=pos)
    assert {"oslo", "runs"} <= set(bundle.words)  # own words and the source's
    mine, theirs = bundle.model.state_dict(), pos.model.state_dict()
    for name in theirs:
        if name.startswith(("lstm.", "upper.", "chars.lstm.")):
            assert torch.equal(mine[name], theirs[name]), name
    for word in ("the", "runs", "<unk>"):
        assert torch.equal(mine["embed.weight"][bundle.word_index[word]],
                           theirs["embed.weight"][pos.word_index[word]])
    assert not torch.equal(mine["out.weight"][:1], theirs["out.weight"][:1])  # heads fresh
    other = T.train_tagger(ner, ner[:4], "iob2", still, 1, torch.device("cpu"), no_log)[0]
    assert not torch.equal(other.model.state_dict()["lstm.weight_hh_l0"],
                           theirs["lstm.weight_hh_l0"])
    with pytest.raises(ValueError, match=r"transfer: the source model differs in \['hidden'\]"):
        T.train_tagger(ner, ner[:4], "iob2", {**still, "hidden": 4}, 1, torch.device("cpu"),
                       no_log, init_from=pos)


def test_fused_adam_is_adams_update_in_one_pass():
    """adam_fused (the fast variant's) is PyTorch's fused kernel for the same Adam: after
    steps from the same start, the weights agree with plain Adam's to rounding."""
    torch.manual_seed(0)
    start = torch.nn.Linear(30, 20)
    weights = {}
    for optimizer in ("adam", "adam_fused"):
        model = torch.nn.Linear(30, 20)
        model.load_state_dict(start.state_dict())
        opt = T.make_optimizer(model.parameters(), {"optimizer": optimizer, "lr": 0.01})
        for step in range(5):
            x = torch.randn(8, 30, generator=torch.Generator().manual_seed(step))
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
        weights[optimizer] = model.weight.detach()
    assert opt.defaults["fused"] is True
    assert not torch.equal(weights["adam"], start.weight)
    torch.testing.assert_close(weights["adam_fused"], weights["adam"], rtol=1e-5, atol=1e-6)


def test_char_cnn_at_inference_convolves_each_length_apart_to_the_same_function():
    """Inference convolves groups of equal-length forms (no padding to the longest); the
    training path pads all forms to one length. Same values, to rounding."""
    from pipeline.models.tagger import CharCNN

    torch.manual_seed(0)
    cnn = CharCNN(40, 8, 6, 3, dropout=0.0)
    lengths = [1, 1, 2, 3, 3, 3, 7, 30]  # shortest first, as make_batch orders them
    chars = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        chars[i, :n] = torch.randint(2, 40, (n,))
    runs = ((1, 2), (2, 1), (3, 3), (7, 1), (30, 1))
    padded = cnn.train()(chars, runs)
    grouped = cnn.eval()(chars, runs)
    torch.testing.assert_close(grouped, padded, rtol=1e-6, atol=1e-6)
