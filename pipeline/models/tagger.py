"""BiLSTM-CNN-CRF sequence tagger (Ma & Hovy 2016), with the paper's ablations as flags.

word embedding (+ char CNN: embed chars, convolve, max-pool) -> dropout -> BiLSTM -> dropout
-> linear emission scores -> CRF (``crf: true``) or per-token softmax (``crf: false``).
The char CNN runs once per distinct token form in a batch, not once per token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.models.crf import CRF

PAD, UNK = 0, 1  # reserved indices of the word and char vocabularies

# Keys of hp that fix the architecture; saved with the weights to rebuild the model.
MODEL_KEYS = ("word_dim", "char_dim", "char_filters", "char_window", "hidden", "dropout",
              "crf", "char_cnn", "lowercase")


@dataclass
class Batch:
    """Padded index tensors for one batch of sentences (``B`` sentences, ``L`` tokens)."""

    words: Tensor  # [B, L] word ids
    forms: Tensor  # [B, L] row of each token in ``chars``
    chars: Tensor  # [U, C] char ids of the batch's distinct token forms
    mask: Tensor  # [B, L] bool
    tags: Tensor | None  # [B, L] tag ids (0 on padding), None when predicting

    def to(self, device: torch.device) -> Batch:
        tags = None if self.tags is None else self.tags.to(device)
        return Batch(self.words.to(device), self.forms.to(device), self.chars.to(device),
                     self.mask.to(device), tags)


def uniform_(embedding: nn.Embedding) -> None:
    """Ma & Hovy's embedding init, uniform in +-sqrt(3 / dim); the PAD row stays zero."""
    bound = (3.0 / embedding.embedding_dim) ** 0.5
    with torch.no_grad():
        embedding.weight.uniform_(-bound, bound)
        embedding.weight[PAD].zero_()


class CharCNN(nn.Module):
    def __init__(self, n_chars: int, dim: int, filters: int, window: int, dropout: float):
        super().__init__()
        if window % 2 != 1:
            raise ValueError(f"char_window must be odd (centred windows), got {window}")
        self.embed = nn.Embedding(n_chars, dim, padding_idx=PAD)
        uniform_(self.embed)
        self.conv = nn.Conv1d(dim, filters, window, padding=window // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, chars: Tensor) -> Tensor:
        """``[U, C]`` char ids -> ``[U, filters]``; max over real characters only."""
        x = self.dropout(self.embed(chars)).transpose(1, 2)
        h = self.conv(x).masked_fill((chars == PAD).unsqueeze(1), float("-inf"))
        return h.max(dim=2).values


class Tagger(nn.Module):
    def __init__(self, n_words: int, n_chars: int, n_tags: int, hp: Mapping[str, Any]):
        super().__init__()
        self.embed = nn.Embedding(n_words, hp["word_dim"], padding_idx=PAD)
        uniform_(self.embed)
        self.chars = (CharCNN(n_chars, hp["char_dim"], hp["char_filters"], hp["char_window"],
                              hp["dropout"]) if hp["char_cnn"] else None)
        width = hp["word_dim"] + (hp["char_filters"] if hp["char_cnn"] else 0)
        self.lstm = nn.LSTM(width, hp["hidden"], batch_first=True, bidirectional=True)
        for name, param in self.lstm.named_parameters():
            if name.startswith("bias_ih"):  # forget-gate bias 1, as in the paper
                with torch.no_grad():
                    param.zero_()
                    param[hp["hidden"]:2 * hp["hidden"]] = 1.0
            elif name.startswith("bias_hh"):
                nn.init.zeros_(param)
        self.dropout = nn.Dropout(hp["dropout"])
        self.out = nn.Linear(2 * hp["hidden"], n_tags)
        self.crf = CRF(n_tags) if hp["crf"] else None

    def emissions(self, batch: Batch) -> Tensor:
        """Per-token tag scores ``[B, L, T]``."""
        x = self.embed(batch.words)
        if self.chars is not None:
            x = torch.cat([x, self.chars(batch.chars)[batch.forms]], dim=2)
        lengths = batch.mask.sum(1).cpu()
        packed = pack_padded_sequence(self.dropout(x), lengths, batch_first=True,
                                      enforce_sorted=False)
        h, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True,
                                   total_length=batch.mask.size(1))
        return self.out(self.dropout(h))

    def loss(self, batch: Batch) -> Tensor:
        """Negative log-likelihood summed over a sentence's tokens, mean over sentences."""
        scores = self.emissions(batch)
        if self.crf is not None:
            return -self.crf.log_likelihood(scores, batch.tags, batch.mask).mean()
        nll = F.cross_entropy(scores[batch.mask], batch.tags[batch.mask], reduction="sum")
        return nll / batch.mask.size(0)

    @torch.no_grad()
    def decode(self, batch: Batch) -> Tensor:
        """Best tag ids ``[B, L]`` (0 on padding)."""
        scores = self.emissions(batch)
        if self.crf is not None:
            return self.crf.decode(scores, batch.mask)
        return scores.argmax(dim=2) * batch.mask
