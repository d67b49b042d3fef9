"""Lexical features from packaged data: a word's Brown cluster and its log-probability.

Read from the installed ``spacy-lookups-data`` package (pinned in pyproject.toml; MIT
licence): English Brown clusters (1,000 clusters over about 190k words) and unigram
log-probabilities for 1M words, the tables spaCy's English lexemes used. Nothing is
downloaded; the tables' sha256 go into the MLflow run of every job that uses them.

A token is looked up as written, then lowercased. Its features are two small ids, each
with 0 for "not in the table": the cluster's rank among the table's clusters, and its
log-probability's bin of ``bins`` equal-width bins between the table's extremes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import metadata, resources

PACKAGE = "spacy_lookups_data"
TABLES = {"cluster": "data/en_lexeme_cluster.json.gz", "prob": "data/en_lexeme_prob.json.gz"}


@dataclass(frozen=True)
class Lexicon:
    clusters: dict[str, int]  # word -> cluster rank, 1..n_clusters
    probs: dict[str, float]  # word -> log-probability
    low: float  # the smallest and largest log-probability in the table
    high: float
    provenance: dict[str, str]  # package version and each table's sha256

    @property
    def n_clusters(self) -> int:
        return max(self.clusters.values())

    def _get(self, table: dict, token: str):
        value = table.get(token)
        return table.get(token.lower()) if value is None else value

    def features(self, token: str, bins: int) -> tuple[int, int]:
        """(cluster id, log-probability bin), each 0 when the word is not in the table."""
        cluster = self._get(self.clusters, token) or 0
        prob = self._get(self.probs, token)
        if prob is None:
            return cluster, 0
        fraction = (prob - self.low) / (self.high - self.low)
        return cluster, 1 + min(int(fraction * bins), bins - 1)


@cache
def load() -> Lexicon:
    root = resources.files(PACKAGE)
    raw = {}
    provenance = {"package": f"spacy-lookups-data=={metadata.version('spacy-lookups-data')}"}
    for name, rel in TABLES.items():
        data = (root / rel).read_bytes()
        provenance[f"{name}.sha256"] = hashlib.sha256(data).hexdigest()
        raw[name] = json.loads(gzip.decompress(data))
    ranks = {c: i for i, c in enumerate(sorted({c for c in raw["cluster"].values() if c}), 1)}
    clusters = {w: ranks[c] for w, c in raw["cluster"].items() if c}
    probs = raw["prob"]
    return Lexicon(clusters, probs, min(probs.values()), max(probs.values()), provenance)
