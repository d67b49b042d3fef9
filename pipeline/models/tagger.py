"""BiLSTM-CNN-CRF sequence tagger (Ma & Hovy 2016), with the paper's ablations as flags,
and the components of the stronger variant beside them (docs/tagging.md).

word embedding (+ char encoder) -> dropout -> BiLSTM (``layers`` of them, each upper one
added to its input when ``residual``) -> dropout -> linear emission scores -> CRF
(``crf: true``) or per-token softmax (``crf: false``); auxiliary softmax heads (CoNLL-U XPOS,
FEATS) read the same states when the data set has those columns. The char encoder (Ma &
Hovy's CNN: embed, convolve, max-pool; or a BiLSTM over the characters, its two final states
concatenated, as in Lample et al. 2016 and UDPipe 2) runs once per distinct token form in a
batch, not once per token. With ``lexical_dim`` > 0 each token's input also carries
embeddings of its Brown cluster and frequency bin (pipeline.data.lexical).

Speed: PyTorch's LSTM on a packed batch of unequal lengths takes a generic CPU path whose
backward pass zero-fills the whole batch's gate gradients at every time step (quadratic in
length). So a batch of equal-length sentences runs the LSTM on the dense tensor (the oneDNN
kernel), and the char BiLSTM runs once per group of equal-length forms; packing is left
for batches that mix lengths. Both give the same function as packing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.models.crf import CRF

PAD, UNK = 0, 1  # reserved indices of the word and char vocabularies

# Keys of hp that fix the architecture; saved with the weights to rebuild the model.
MODEL_KEYS = ("word_dim", "char_dim", "char_encoder", "char_filters", "char_window",
              "char_hidden", "hidden", "layers", "residual", "dropout", "crf", "lowercase",
              "lexical_dim", "lexical_bins")


@dataclass
class Batch:
    """Padded index tensors for one batch of sentences (``B`` sentences, ``L`` tokens)."""

    words: Tensor  # [B, L] word ids
    forms: Tensor  # [B, L] row of each token in ``chars``
    chars: Tensor  # [U, C] char ids of the batch's distinct token forms, shortest first
    char_runs: tuple[tuple[int, int], ...]  # (length, count) of ``chars``' rows, in order
    lengths: Tensor  # [B] sentence lengths, kept on the CPU (no device sync to read them)
    mask: Tensor  # [B, L] bool
    tags: Tensor | None  # [B, L] tag ids (0 on padding), None when predicting
    aux: dict[str, Tensor] = field(default_factory=dict)  # auxiliary columns, like tags
    lexical: Tensor | None = None  # [B, L, 2] Brown cluster and log-probability bin ids

    def to(self, device: torch.device) -> Batch:
        tags = None if self.tags is None else self.tags.to(device)
        lexical = None if self.lexical is None else self.lexical.to(device)
        return Batch(self.words.to(device), self.forms.to(device), self.chars.to(device),
                     self.char_runs, self.lengths, self.mask.to(device), tags,
                     {k: v.to(device) for k, v in self.aux.items()}, lexical)

    @property
    def equal_lengths(self) -> bool:
        return bool(self.lengths.min() == self.words.size(1))


def uniform_(embedding: nn.Embedding) -> None:
    """Ma & Hovy's embedding init, uniform in +-sqrt(3 / dim); the PAD row stays zero."""
    bound = (3.0 / embedding.embedding_dim) ** 0.5
    with torch.no_grad():
        embedding.weight.uniform_(-bound, bound)
        embedding.weight[PAD].zero_()


class CharCNN(nn.Module):
    """Ma & Hovy's char CNN. At inference each group of equal-length forms (``runs``) is
    convolved on its own, not padded to the batch's longest form (one URL pads thousands of
    short words): the same function in a third less time. The rounding can differ (oneDNN
    picks its kernel by shape); no prediction of any model trained here changed
    (docs/benchmarks.md). Training keeps one call: there, twenty small backward passes cost
    more than the padding they save."""

    def __init__(self, n_chars: int, dim: int, filters: int, window: int, dropout: float):
        super().__init__()
        if window % 2 != 1:
            raise ValueError(f"char_window must be odd (centred windows), got {window}")
        self.embed = nn.Embedding(n_chars, dim, padding_idx=PAD)
        uniform_(self.embed)
        self.conv = nn.Conv1d(dim, filters, window, padding=window // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, chars: Tensor, runs: tuple[tuple[int, int], ...]) -> Tensor:
        """``[U, C]`` char ids, in ``runs`` of (length, count) rows of equal length ->
        ``[U, filters]``; max over real characters only."""
        x = self.dropout(self.embed(chars)).transpose(1, 2)
        if not self.training:
            out, start = [], 0
            for length, count in runs:
                out.append(self.conv(x[start:start + count, :, :length]).max(dim=2).values)
                start += count
            return torch.cat(out)
        h = self.conv(x).masked_fill((chars == PAD).unsqueeze(1), float("-inf"))
        return h.max(dim=2).values


class CharBiLSTM(nn.Module):
    def __init__(self, n_chars: int, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(n_chars, dim, padding_idx=PAD)
        uniform_(self.embed)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, chars: Tensor, runs: tuple[tuple[int, int], ...]) -> Tensor:
        """``[U, C]`` char ids, in ``runs`` of (length, count) rows of equal length ->
        ``[U, 2 * hidden]``: the last forward and first backward state of each form."""
        x = self.dropout(self.embed(chars))
        out, start = [], 0
        for length, count in runs:  # dense LSTM calls, one per form length (module docstring)
            final = self.lstm(x[start:start + count, :length])[1][0]  # [2, count, hidden]
            out.append(torch.cat([final[0], final[1]], dim=1))
            start += count
        return torch.cat(out)


def char_encoder(n_chars: int, hp: Mapping[str, Any]) -> tuple[nn.Module | None, int]:
    """The configured char encoder and the width it adds to each token's input."""
    kind = hp["char_encoder"]
    if kind == "cnn":
        return CharCNN(n_chars, hp["char_dim"], hp["char_filters"], hp["char_window"],
                       hp["dropout"]), hp["char_filters"]
    if kind == "bilstm":
        return CharBiLSTM(n_chars, hp["char_dim"], hp["char_hidden"], hp["dropout"]), \
            2 * hp["char_hidden"]
    if kind == "none":
        return None, 0
    raise ValueError(f"char_encoder must be cnn, bilstm or none, got {kind!r}")


def bilstm(width: int, hidden: int) -> nn.LSTM:
    """A BiLSTM layer with the forget-gate bias at 1, as in the paper."""
    lstm = nn.LSTM(width, hidden, batch_first=True, bidirectional=True)
    for name, param in lstm.named_parameters():
        if name.startswith("bias_ih"):
            with torch.no_grad():
                param.zero_()
                param[hidden:2 * hidden] = 1.0
        elif name.startswith("bias_hh"):
            nn.init.zeros_(param)
    return lstm


class Lexical(nn.Module):
    """Embeddings of a token's Brown cluster and log-probability bin (pipeline.data.lexical),
    concatenated; id 0 (not in the table) is a learnt vector of its own."""

    def __init__(self, n_clusters: int, bins: int, dim: int):
        super().__init__()
        self.cluster = nn.Embedding(n_clusters + 1, dim)
        self.prob = nn.Embedding(bins + 1, dim)
        uniform_(self.cluster)
        uniform_(self.prob)

    def forward(self, ids: Tensor) -> Tensor:
        return torch.cat([self.cluster(ids[..., 0]), self.prob(ids[..., 1])], dim=-1)


class Tagger(nn.Module):
    def __init__(self, n_words: int, n_chars: int, n_tags: int, hp: Mapping[str, Any],
                 aux_tags: Mapping[str, int] | None = None, n_clusters: int = 0):
        super().__init__()
        self.embed = nn.Embedding(n_words, hp["word_dim"], padding_idx=PAD)
        uniform_(self.embed)
        self.chars, char_width = char_encoder(n_chars, hp)
        self.lexical = (Lexical(n_clusters, hp["lexical_bins"], hp["lexical_dim"])
                        if hp["lexical_dim"] else None)
        lexical_width = 2 * hp["lexical_dim"]
        self.lstm = bilstm(hp["word_dim"] + char_width + lexical_width, hp["hidden"])
        # Layers above the first (none in Ma & Hovy's model), each fed the one below.
        self.upper = nn.ModuleList(bilstm(2 * hp["hidden"], hp["hidden"])
                                   for _ in range(hp["layers"] - 1))
        self.residual = hp["residual"]
        self.dropout = nn.Dropout(hp["dropout"])
        self.out = nn.Linear(2 * hp["hidden"], n_tags)
        self.aux = nn.ModuleDict({name: nn.Linear(2 * hp["hidden"], n)
                                  for name, n in (aux_tags or {}).items()})
        self.crf = CRF(n_tags) if hp["crf"] else None

    def states(self, batch: Batch) -> Tensor:
        """The top BiLSTM layer's states ``[B, L, 2 * hidden]``, after dropout (0 on
        padding)."""
        h, pad = self._top(batch)
        return pad(h)

    def _top(self, batch: Batch) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        """The top states after dropout, and the function that lays any per-token tensor
        computed from them out as ``[B, L, ...]``. An equal-length batch runs dense
        (``[B, L, 2 * hidden]``, laid out already). Any other is packed before its inputs
        are embedded (the token ids are gathered, not padded features) and stays packed
        (``[N, 2 * hidden]``, N real tokens) until a head has made it narrow: the LSTM
        gets the same input as from padded features, and no work is spent on padding."""
        if batch.equal_lengths:
            x = self._inputs(batch, batch.words, batch.forms, batch.lexical)
            return self.dropout(self._stack(x, lambda lstm, data: lstm(data)[0])), \
                lambda y: y
        where = torch.arange(batch.words.numel(), device=batch.words.device)
        packed = pack_padded_sequence(where.view_as(batch.words), batch.lengths,
                                      batch_first=True, enforce_sorted=False)
        tokens = packed.data  # its sort indices on the batch's device too, as the LSTM needs
        lexical = None if batch.lexical is None else batch.lexical.flatten(0, 1)[tokens]
        x = self._inputs(batch, batch.words.flatten()[tokens], batch.forms.flatten()[tokens],
                         lexical)
        h = self._stack(x, lambda lstm, data: lstm(packed._replace(data=data))[0].data)

        def pad(y: Tensor) -> Tensor:
            return pad_packed_sequence(packed._replace(data=y), batch_first=True,
                                       total_length=batch.words.size(1))[0]
        return self.dropout(h), pad

    def _inputs(self, batch: Batch, words: Tensor, forms: Tensor, lexical: Tensor | None
                ) -> Tensor:
        """Each token's word, char-encoder and lexical features, after dropout (``words``
        of any shape, ``[B, L]`` or packed ``[N]``)."""
        x = self.embed(words)
        if self.chars is not None:
            x = torch.cat([x, self.chars(batch.chars, batch.char_runs)[forms]], dim=-1)
        if self.lexical is not None:
            x = torch.cat([x, self.lexical(lexical)], dim=-1)
        return self.dropout(x)

    def _stack(self, x: Tensor, run: Callable[[nn.LSTM, Tensor], Tensor]) -> Tensor:
        """The BiLSTM layers over ``x``, with dropout between layers and the residual sums;
        ``run`` applies one layer (to a dense batch, or to the data of a packed one)."""
        out = run(self.lstm, x)
        for layer in self.upper:
            above = run(layer, self.dropout(out))
            out = above + out if self.residual else above
        return out

    def emissions(self, batch: Batch) -> Tensor:
        """Per-token tag scores ``[B, L, T]`` (0 on padding)."""
        h, pad = self._top(batch)
        return pad(self.out(h))

    def loss(self, batch: Batch, label_smoothing: float = 0.0, aux_weight: float = 0.0
             ) -> Tensor:
        """Negative log-likelihood summed over a sentence's tokens, mean over sentences;
        plus ``aux_weight`` times each auxiliary head's. Label smoothing applies to the
        softmax heads (a CRF's likelihood has no per-token target to smooth)."""
        h, pad = self._top(batch)
        scores = pad(self.out(h))
        if self.crf is not None:
            loss = -self.crf.log_likelihood(scores, batch.tags, batch.mask).mean()
        else:
            loss = self._nll(scores, batch.tags, batch.mask, label_smoothing)
        if aux_weight:
            for name, head in self.aux.items():
                loss = loss + aux_weight * self._nll(pad(head(h)), batch.aux[name],
                                                     batch.mask, label_smoothing)
        return loss

    @staticmethod
    def _nll(scores: Tensor, tags: Tensor, mask: Tensor, label_smoothing: float) -> Tensor:
        nll = F.cross_entropy(scores[mask], tags[mask], reduction="sum",
                              label_smoothing=label_smoothing)
        return nll / mask.size(0)

    @torch.no_grad()
    def decode(self, batch: Batch) -> Tensor:
        """Best tag ids ``[B, L]`` (0 on padding)."""
        scores = self.emissions(batch)
        if self.crf is not None:
            return self.crf.decode(scores, batch.mask)
        return scores.argmax(dim=2) * batch.mask
