"""Train, apply, save and load the BiLSTM-CNN-CRF tagger.

Ma & Hovy's recipe: SGD with momentum, lr / (1 + decay * epoch), gradient norm clipping,
small batches; here each batch holds sentences of one length (batch order shuffled from the
seed; the LSTM then runs unpacked, several times faster on a CPU) and the best epoch on the
dev data is kept. The stronger
variant's switches live in the same loop: Adam, word dropout on every word, label
smoothing, auxiliary heads, and (``early_stopping: false``) a fixed number of epochs on the
whole training file with the weights of the last ``average_last`` epochs averaged.
"""

from __future__ import annotations

import copy
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pipeline.data import lexical as lexical_tables
from pipeline.data.embeddings import embedding_matrix
from pipeline.data.sentences import Sentence
from pipeline.evaluate.tagging import tagging_metrics
from pipeline.io import BadInput, save_torch
from pipeline.models.tagger import MODEL_KEYS, PAD, UNK, Batch, Tagger
from pipeline.progress import progress
from pipeline.seeding import numpy_rng, seed_everything

LogFn = Callable[[dict[str, float], int], None]
SCHEMES = {"iob2": "f1", "tags": "accuracy"}  # scheme -> dev metric for early stopping
BUNDLE_FORMAT = 2


@dataclass
class TaggerBundle:
    """A trained model with the vocabularies and hp needed to rebuild and apply it."""

    model: Tagger
    words: list[str]
    chars: list[str]
    tags: list[str]
    hp: dict[str, Any]
    aux: dict[str, list[str]] = field(default_factory=dict)  # auxiliary column -> its tags
    word_index: dict[str, int] = field(init=False, repr=False)
    char_index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.word_index = {w: i for i, w in enumerate(self.words)}
        self.char_index = {c: i for i, c in enumerate(self.chars)}


@dataclass
class Encoded:
    """Sentences as index arrays; ``char_table[f]`` holds the chars of distinct form ``f``."""

    words: list[np.ndarray]
    forms: list[np.ndarray]
    tags: list[np.ndarray] | None
    aux: dict[str, list[np.ndarray]]
    lexical: list[np.ndarray] | None  # [n_tokens, 2] per sentence, with lexical features
    char_table: np.ndarray  # [n_forms, max_chars], PAD-filled
    char_lengths: np.ndarray  # [n_forms]


def norm(token: str, lowercase: bool) -> str:
    return token.lower() if lowercase else token


def encode(bundle: TaggerBundle, sentences: Sequence[Sentence], with_tags: bool) -> Encoded:
    """Map tokens to ids: unknown words and chars become UNK; distinct forms share a row,
    and each form's word id and lexical features are looked up once."""
    lowercase = bundle.hp["lowercase"]
    form_index: dict[str, int] = {}
    forms = [np.array([form_index.setdefault(t, len(form_index)) for t in s.tokens],
                      dtype=np.int64) for s in sentences]
    form_words = np.array([bundle.word_index.get(norm(f, lowercase), UNK) for f in form_index]
                          or [UNK], dtype=np.int64)
    words = [form_words[f] for f in forms]
    spelled = [[bundle.char_index.get(c, UNK) for c in form] or [UNK] for form in form_index]
    lengths = np.array([len(c) for c in spelled] or [1], dtype=np.int64)
    table = np.full((max(len(spelled), 1), lengths.max()), PAD, dtype=np.int64)
    for i, ids in enumerate(spelled):
        table[i, :len(ids)] = ids
    tags, aux = None, {}
    if with_tags:
        tags = _ids(bundle.tags, [s.tags for s in sentences])
        aux = {name: _ids(vocab, [s.aux[name] for s in sentences])
               for name, vocab in bundle.aux.items()}
    lexical = None
    if bundle.hp["lexical_dim"]:
        lexicon, bins = lexical_tables.load(), bundle.hp["lexical_bins"]
        form_features = np.array([lexicon.features(f, bins) for f in form_index] or [(0, 0)],
                                 dtype=np.int64)
        lexical = [form_features[f] for f in forms]
    return Encoded(words, forms, tags, aux, lexical, table, lengths)


def _ids(vocab: list[str], columns: list[list[str]]) -> list[np.ndarray]:
    index = {t: i for i, t in enumerate(vocab)}
    return [np.array([index[t] for t in column], dtype=np.int64) for column in columns]


def make_batch(data: Encoded, rows: Sequence[int]) -> Batch:
    """Pad the chosen sentences; the char CNN input covers only their distinct forms."""
    length = max(len(data.words[r]) for r in rows)
    words = np.full((len(rows), length), PAD, dtype=np.int64)
    forms = np.zeros((len(rows), length), dtype=np.int64)
    tags = np.zeros((len(rows), length), dtype=np.int64)
    aux = {name: np.zeros((len(rows), length), dtype=np.int64) for name in data.aux}
    lexical = None if data.lexical is None else np.zeros((len(rows), length, 2), dtype=np.int64)
    for i, r in enumerate(rows):
        n = len(data.words[r])
        words[i, :n] = data.words[r]
        forms[i, :n] = data.forms[r]
        if data.tags is not None:
            tags[i, :n] = data.tags[r]
        for name, column in data.aux.items():
            aux[name][i, :n] = column[r]
        if lexical is not None:
            lexical[i, :n] = data.lexical[r]
    distinct, inverse = np.unique(forms, return_inverse=True)
    by_length = np.argsort(data.char_lengths[distinct], kind="stable")  # shortest forms first
    rank = np.empty_like(by_length)
    rank[by_length] = np.arange(len(by_length))
    distinct = distinct[by_length]
    char_lengths = data.char_lengths[distinct]
    runs, counts = np.unique(char_lengths, return_counts=True)
    sentence_lengths = np.array([len(data.words[r]) for r in rows])
    return Batch(
        words=torch.from_numpy(words),
        forms=torch.from_numpy(rank[inverse].reshape(forms.shape)),
        chars=torch.from_numpy(np.ascontiguousarray(data.char_table[distinct,
                                                                    :char_lengths.max()])),
        char_runs=tuple(zip(runs.tolist(), counts.tolist(), strict=True)),
        lengths=torch.from_numpy(sentence_lengths),
        mask=torch.from_numpy(words != PAD),
        tags=torch.from_numpy(tags) if data.tags is not None else None,
        aux={name: torch.from_numpy(a) for name, a in aux.items()},
        lexical=None if lexical is None else torch.from_numpy(lexical),
    )


def equal_length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator
                         ) -> list[list[int]]:
    """Batches of sentences of one length each (the LSTM then runs unpacked, see
    pipeline.models.tagger), in random order. A length with more than ``batch_size``
    sentences is cut into batches of nearly equal size (40 at 32 -> 20 + 20, not 32 + 8)."""
    order = rng.permutation(len(lengths))
    batches = []
    for length in np.unique(lengths):
        same = order[lengths[order] == length]
        batches += [b.tolist() for b in np.array_split(same, -(-len(same) // batch_size))]
    return [batches[i] for i in rng.permutation(len(batches))]


def passes_per_epoch(lengths: np.ndarray, hp: Mapping[str, Any]) -> int:
    """Passes over the training data in one epoch of the schedule: more than one when
    ``max_epochs`` passes would give fewer than ``min_updates`` updates (a few hundred
    sentences, as in an active-learning round). The lr schedule and the weight averaging
    still count ``max_epochs`` epochs: a small set gets the recipe's shape, only longer."""
    _, counts = np.unique(lengths, return_counts=True)
    per_pass = int(sum(-(-counts // hp["batch_size"])))  # equal_length_batches' count
    return max(1, -(-hp["min_updates"] // (hp["max_epochs"] * per_pass)))


def build_vocab(train: Sequence[Sentence], hp: Mapping[str, Any]) -> tuple[list, list, list]:
    """Words (lowercased if hp says so), chars and tags of the training data, sorted."""
    words = sorted({norm(t, hp["lowercase"]) for s in train for t in s.tokens})
    chars = sorted({c for s in train for t in s.tokens for c in t})
    tags = sorted({t for s in train for t in s.tags})
    return ["<pad>", "<unk>", *words], ["<pad>", "<unk>", *chars], tags


def singleton_mask(bundle: TaggerBundle, train: Sequence[Sentence]) -> torch.Tensor:
    """True for word ids seen once in training: these are swapped for UNK with probability
    ``singleton_unk`` during training, so the model learns a useful UNK vector."""
    counts = Counter(norm(t, bundle.hp["lowercase"]) for s in train for t in s.tokens)
    mask = torch.zeros(len(bundle.words), dtype=torch.bool)
    for word, count in counts.items():
        if count == 1:
            mask[bundle.word_index[word]] = True
    return mask


def rebuild(words: list[str], chars: list[str], tags: list[str], hp: dict,
            aux: dict[str, list[str]] | None = None) -> TaggerBundle:
    aux = aux or {}
    n_clusters = lexical_tables.load().n_clusters if hp["lexical_dim"] else 0
    model = Tagger(len(words), len(chars), len(tags), hp, {k: len(v) for k, v in aux.items()},
                   n_clusters)
    return TaggerBundle(model, words, chars, tags, hp, aux)


def aux_vocab(train: Sequence[Sentence], hp: Mapping[str, Any]) -> dict[str, list[str]]:
    """Tags of each auxiliary column in the training data; none unless ``aux_weight`` > 0."""
    if not hp["aux_weight"]:
        return {}
    names = sorted({name for s in train for name in s.aux})
    return {name: sorted({t for s in train for t in s.aux[name]}) for name in names}


def make_optimizer(params, hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    if hp["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"])
    if hp["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=hp["lr"])
    if hp["optimizer"] == "adam_fused":  # the same update in one pass per tensor (6x faster
        return torch.optim.Adam(params, lr=hp["lr"], fused=True)  # on the CPU); other rounding
    raise ValueError(f"optimizer must be sgd, adam or adam_fused, got {hp['optimizer']!r}")


class WeightAverage:
    """The weights at the end of the last ``k`` epochs and their mean (checkpoint
    averaging); with ``k`` 1 the mean is the last epoch's weights."""

    def __init__(self, k: int):
        self.k, self.states = k, []

    def add(self, model: torch.nn.Module) -> None:
        self.states = [*self.states, copy.deepcopy(model.state_dict())][-self.k:]

    def result(self) -> dict[str, torch.Tensor]:
        return {name: torch.stack([s[name] for s in self.states]).mean(dim=0)
                for name in self.states[0]}


# What a transfer variant takes from its source model: everything below the output heads.
TRANSFERRED = ("embed.", "chars.", "lexical.", "lstm.", "upper.")


def transfer(bundle: TaggerBundle, source: TaggerBundle) -> None:
    """Start ``bundle`` from ``source``'s lower layers (POS-to-NER transfer): word and char
    embedding rows by the word or char they stand for, the char encoder, the lexical
    feature embeddings and the BiLSTM layers as they are. The two must share the
    architecture; the heads stay fresh."""
    differ = [k for k in MODEL_KEYS if k != "crf" and bundle.hp[k] != source.hp[k]]
    if differ:
        raise ValueError(f"transfer: the source model differs in {differ}; a transfer variant "
                         "must share its source's architecture")
    state = bundle.model.state_dict()
    for name, value in source.model.state_dict().items():
        if name.endswith("embed.weight"):
            vocab, index = ((bundle.words, source.word_index) if name == "embed.weight"
                            else (bundle.chars, source.char_index))
            rows = [(i, index[v]) for i, v in enumerate(vocab) if v in index]
            target, origin = zip(*rows, strict=True)
            state[name][list(target)] = value[list(origin)]
        elif name.startswith(TRANSFERRED):
            state[name].copy_(value)
    bundle.model.load_state_dict(state)


def train_epoch(model: Tagger, data: Encoded, batches: Iterable[list[int]],
                optimizer: torch.optim.Optimizer, singletons: torch.Tensor,
                hp: Mapping[str, Any]) -> float:
    """One pass over ``batches`` (rows of ``data``); returns the loss summed over sentences.

    Words are swapped for UNK at random: singletons with probability ``singleton_unk``,
    and (``word_dropout``) any word."""
    device = singletons.device
    model.train()
    total = torch.zeros((), device=device)
    for rows in batches:
        batch = make_batch(data, rows).to(device)
        drop = singletons[batch.words] & (torch.rand(batch.words.shape, device=device)
                                          < hp["singleton_unk"])
        if hp["word_dropout"]:
            drop |= torch.rand(batch.words.shape, device=device) < hp["word_dropout"]
        batch.words = batch.words.masked_fill(drop, UNK)
        loss = model.loss(batch, hp["label_smoothing"], hp["aux_weight"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp["clip"])
        optimizer.step()
        total += loss.detach() * len(rows)  # summed on the device: no sync per batch
    return total.item()


def train_tagger(
    train: list[Sentence], dev: list[Sentence], scheme: str, hp: Mapping[str, Any], seed: int,
    device: torch.device, log: LogFn, init_from: TaggerBundle | None = None,
) -> tuple[TaggerBundle, dict[str, list[float]]]:
    """Train on ``train``, early-stop on ``dev`` (entity F1 for iob2, accuracy for tags).

    ``init_from`` (a transfer variant's source model): its vocabularies join this one's,
    and its lower layers are the starting point (``transfer``).

    With ``early_stopping: false`` dev joins the training data (the whole training file),
    every one of ``max_epochs`` runs, and the kept weights are the mean of the last
    ``average_last`` epochs'. A small training set gets several passes an epoch, so that
    training makes at least ``min_updates`` updates (``passes_per_epoch``). Returns the
    bundle and per-epoch history lists (epoch, train_loss, lr, epoch_seconds; with early
    stopping also dev_accuracy, dev_f1 for iob2 and dev_score, the stopping metric); every
    epoch is also passed to ``log``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(SCHEMES)}, got {scheme!r}")
    if not train or not dev:
        raise ValueError("train_tagger needs non-empty train and dev sentences")
    early = hp["early_stopping"]
    if early and hp["average_last"] != 1:
        raise ValueError("average_last > 1 needs early_stopping: false (the kept weights "
                         "are the best epoch's, not the last ones)")
    if not early:
        train = [*train, *dev]
    seed_everything(seed)
    rng = numpy_rng(seed, "tagging-batches")
    model_hp = {k: hp[k] for k in MODEL_KEYS}
    words, chars, tags = build_vocab(train, hp)
    if init_from is not None:
        words = [*words[:2], *sorted(set(words[2:]) | set(init_from.words[2:]))]
        chars = [*chars[:2], *sorted(set(chars[2:]) | set(init_from.chars[2:]))]
    bundle = rebuild(words, chars, tags, model_hp, aux_vocab(train, hp))
    if hp["embeddings"]:
        matrix, _ = embedding_matrix(hp["embeddings"], bundle.words, hp["word_dim"],
                                     hp["lowercase"], numpy_rng(seed, "embeddings"))
        with torch.no_grad():
            bundle.model.embed.weight.copy_(torch.from_numpy(matrix))
            bundle.model.embed.weight[PAD].zero_()
    if init_from is not None:
        transfer(bundle, init_from)
    model = bundle.model.to(device)
    data = encode(bundle, train, with_tags=True)
    lengths = np.array([len(w) for w in data.words])
    singletons = singleton_mask(bundle, train).to(device)
    optimizer = make_optimizer(model.parameters(), hp)
    metric = SCHEMES[scheme]
    history: dict[str, list[float]] = defaultdict(list)
    best_score, best_state, stale = -1.0, {}, 0
    average = WeightAverage(hp["average_last"])
    passes = passes_per_epoch(lengths, hp)
    for epoch in range(hp["max_epochs"]):
        lr = hp["lr"] / (1.0 + hp["decay"] * epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        start = time.perf_counter()
        batches = [b for _ in range(passes)
                   for b in equal_length_batches(lengths, hp["batch_size"], rng)]
        total = train_epoch(model, data, progress(batches, desc=f"epoch {epoch + 1}"),
                            optimizer, singletons, hp)
        row = {"train_loss": total / (passes * len(train)), "lr": lr,
               "epoch_seconds": time.perf_counter() - start}
        if early:
            scores = tagging_metrics([s.tags for s in dev],
                                     predict(bundle, dev, hp["eval_batch_size"]), scheme)
            row.update(dev_accuracy=scores["accuracy"],
                       **({"dev_f1": scores["f1"]} if scheme == "iob2" else {}),
                       dev_score=scores[metric])
        log(row, epoch + 1)
        for key, value in {"epoch": epoch + 1, **row}.items():
            history[key].append(value)
        if not early:
            average.add(model)
        elif scores[metric] > best_score:
            best_score, best_state, stale = scores[metric], copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= hp["patience"]:
                break
    model.load_state_dict(best_state if early else average.result())
    return bundle, dict(history)


def batches_in_order(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Longest first, so each batch pads little; callers restore the original order.
    (Large packed batches beat equal-length ones here: the packed path is slow only in
    the backward pass.)"""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for i in range(0, len(order), batch_size):
        yield order[i:i + batch_size]


def predict(bundle: TaggerBundle, sentences: Sequence[Sentence], batch_size: int
            ) -> list[list[str]]:
    """Tag every sentence (in the given order); empty sentences get empty tag lists."""
    model = bundle.model
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[list[str]] = [[] for _ in sentences]
    keep = [i for i, s in enumerate(sentences) if s.tokens]
    data = encode(bundle, [sentences[i] for i in keep], with_tags=False)
    with torch.inference_mode():
        decoded = [(rows, model.decode(make_batch(data, rows).to(device)))
                   for rows in batches_in_order([len(w) for w in data.words], batch_size)]
    names = np.array(bundle.tags, dtype=object)
    for rows, best in decoded:  # to the host once all batches are queued
        for b, r in zip(best.cpu().numpy(), rows, strict=True):
            out[keep[r]] = names[b[:len(data.words[r])]].tolist()
    model.train(was_training)
    return out


def save_bundle(path: str | os.PathLike, bundle: TaggerBundle) -> None:
    """Atomic; a plain dict of tensors, lists and builtins, so equal weights give equal bytes."""
    save_torch(path, {
        "format": BUNDLE_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in bundle.model.state_dict().items()},
        "words": list(bundle.words), "chars": list(bundle.chars), "tags": list(bundle.tags),
        "aux": {k: list(v) for k, v in bundle.aux.items()}, "hp": dict(bundle.hp),
    })


def load_bundle(path: str | os.PathLike, device: torch.device | None = None) -> TaggerBundle:
    """A bundle ``save_bundle`` wrote; any other file is a BadInput naming it."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise  # missing, a directory: the OS's own words name the file
    except Exception as e:  # torch.load raises KeyError, EOFError, UnpicklingError, ...
        raise BadInput(f"{path}: not a tagger bundle (torch.load: {type(e).__name__})") from e
    if not isinstance(blob, dict) or blob.get("format") != BUNDLE_FORMAT:
        raise BadInput(f"{path}: not a tagger bundle of format {BUNDLE_FORMAT}")
    bundle = rebuild(blob["words"], blob["chars"], blob["tags"], blob["hp"], blob["aux"])
    bundle.model.load_state_dict(blob["state_dict"])
    bundle.model.eval()
    if device is not None:
        bundle.model.to(device)
    return bundle
