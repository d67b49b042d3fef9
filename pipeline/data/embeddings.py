"""Pretrained word vectors from word2vec / GloVe text files, as a matrix for our vocabulary."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from pipeline.data.conllu import open_text
from pipeline.io import BadInput


def read_vectors(
    path: str | os.PathLike, wanted: set[str] | None = None, lowercase: bool = False
) -> dict[str, np.ndarray]:
    """Vectors of the ``wanted`` words (all when None); a word2vec header line is optional.

    With ``lowercase`` the file's words are lowercased and the first occurrence wins, which
    in frequency-sorted files (word2vec, GloVe) is the most frequent casing.
    """
    vectors: dict[str, np.ndarray] = {}
    dim = 0
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\r\n").rstrip(" ")
            if not line:
                continue
            if lineno == 1:
                head = line.split(" ")
                if len(head) == 2 and head[0].isdigit() and head[1].isdigit():
                    dim = int(head[1])  # word2vec header: "<count> <dim>"
                    continue
                dim = len(head) - 1
            parts = line.rsplit(" ", dim)  # words may contain spaces (GloVe 840B)
            if len(parts) != dim + 1 or not parts[0]:
                raise BadInput(f"{path}:{lineno}: expected a word and {dim} numbers")
            word = parts[0].lower() if lowercase else parts[0]
            if word in vectors or (wanted is not None and word not in wanted):
                continue
            try:
                vectors[word] = np.asarray(parts[1:], dtype=np.float32)
            except ValueError as e:
                raise BadInput(f"{path}:{lineno}: not a number in the vector ({e})") from None
    if dim <= 0:
        raise BadInput(f"{path}: no vectors found")
    return vectors


def embedding_matrix(
    path: str | os.PathLike, vocab: Sequence[str], dim: int, lowercase: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Rows for ``vocab``: the pretrained vector where the file has the word, else uniform
    in +-sqrt(3/dim) (Ma & Hovy's random init). Returns the matrix and the number found."""
    vectors = read_vectors(path, set(vocab), lowercase)
    if vectors:
        found_dim = len(next(iter(vectors.values())))
        if found_dim != dim:
            raise BadInput(f"{path}: vectors have {found_dim} dimensions, word_dim is {dim}")
    scale = np.sqrt(3.0 / dim)
    matrix = rng.uniform(-scale, scale, size=(len(vocab), dim)).astype(np.float32)
    for i, word in enumerate(vocab):
        if word in vectors:
            matrix[i] = vectors[word]
    return matrix, sum(word in vectors for word in vocab)
