"""Our taggers against spaCy's CPU tagger, side by side in one run, one thread each.

    python benchmarks/bench_peer.py [--epochs 10] [--variants fast bilstm_cnn_crf deep_lexical]

spaCy (pinned below) lives in its own virtualenv (``.venv-peer``, made on first use from
PyPI), so its pins never meet the project's. Both sides read UD English-EWT train and dev
from configs/paper-tagging.yaml (the parent reads the files and hands spaCy the tokens and
UPOS tags, so both see the same sentences):

- spaCy: a blank ``en`` pipeline with a ``tagger`` and its default CPU model (hash
  embeddings + maxout CNN, width 96, depth 4), trained with its default optimiser (Adam
  0.001) on batches of its default training config (``batch_by_words``, compounding
  100 -> 1000 words, dropout 0.1), shuffled every epoch, for ``--epochs`` epochs with no
  evaluation in the timed epoch (accuracy is read after each, off the clock); then
  ``nlp.pipe`` over EWT dev, timed, and its UPOS accuracy at the end (and best epoch).
- ours: each variant's own epoch (``train_epoch``, the trainer's function, on the batches
  the pipeline would use), and ``predict`` over EWT dev, timed, from a model of the same
  architecture (inference time does not depend on the weights). Accuracy comes from the
  pipeline's runs, not from here (docs/benchmarks.md). Beside it the ceiling: the
  sentences/s if inference did nothing but the word BiLSTM's matrix products, at the rate
  this CPU multiplies matrices of their shapes (what no change that keeps the model and
  its predictions can pass).

Each figure is the best of ``--epochs`` epochs (training) and of 3 passes (inference).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACY = "spacy==3.8.18"
VENV = Path(__file__).resolve().parents[1] / ".venv-peer"
PROFILE = "configs/paper-tagging.yaml"
ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                               "BLIS_NUM_THREADS")}

SPACY_SIDE = r'''
import json, random, sys, time
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from spacy.training.batchers import minibatch_by_words
from thinc.api import compounding

data = json.load(open(sys.argv[1]))
epochs = int(sys.argv[2])
nlp = spacy.blank("en")
nlp.add_pipe("tagger")
def docs(split):
    return [(Doc(nlp.vocab, words=words), tags) for words, tags in data[split]]
train = [Example.from_dict(doc, {"tags": tags}) for doc, tags in docs("train")]
dev = docs("dev")
optimizer = nlp.initialize(lambda: train)
def accuracy():
    right = total = 0
    for doc, (_, tags) in zip(nlp.pipe(d for d, _ in dev), dev):
        right += sum(t.tag_ == g for t, g in zip(doc, tags)); total += len(tags)
    return right / total
epoch_seconds, accuracies = [], []
random.seed(0)
for epoch in range(epochs):
    random.shuffle(train)  # as spaCy's training loop does every epoch
    sizes = compounding(100.0, 1000.0, 1.001)  # spaCy's default training config
    start = time.perf_counter()
    for batch in minibatch_by_words(train, size=sizes, tolerance=0.2, discard_oversize=False):
        nlp.update(batch, sgd=optimizer, drop=0.1)
    epoch_seconds.append(time.perf_counter() - start)
    accuracies.append(accuracy())  # after the clock: not part of the epoch
rates = []
for _ in range(3):
    start = time.perf_counter()
    list(nlp.pipe(d for d, _ in dev))
    rates.append(len(dev) / (time.perf_counter() - start))
print(json.dumps({"epoch": min(epoch_seconds), "epochs": epoch_seconds,
                  "sentences_per_s": max(rates), "upos": accuracies[-1],
                  "best_upos": max(accuracies), "version": spacy.__version__}))
'''


def spacy_python() -> Path:
    """The peer's interpreter, its virtualenv made on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", SPACY], check=True)
    return python


def ewt(cfg: dict) -> tuple[list, list]:
    from pipeline.data.conllu import read_conllu

    corpus = cfg["tagging"]["corpora"]["ud_ewt"]
    return (read_conllu(corpus["train"], corpus["column"], corpus.get("aux", [])),
            read_conllu(corpus["dev"], corpus["column"]))


def ours(variant: str, cfg: dict, train: list, dev: list, epochs: int) -> dict[str, float]:
    import numpy as np
    import torch

    from pipeline.seeding import deterministic_torch, numpy_rng, seed_everything
    from pipeline.stages.tagging import hyperparameters
    from pipeline.train import tagging as T

    hp = hyperparameters(cfg, "ud_ewt", variant)
    torch.set_num_threads(1)
    seed_everything(0)
    deterministic_torch()
    bundle = T.rebuild(*T.build_vocab(train, hp), {k: hp[k] for k in T.MODEL_KEYS},
                       T.aux_vocab(train, hp))
    data = T.encode(bundle, train, with_tags=True)
    lengths = np.array([len(w) for w in data.words])
    optimizer = T.make_optimizer(bundle.model.parameters(), hp)
    singletons = T.singleton_mask(bundle, train)
    rng = numpy_rng(0, "peer")
    epoch = float("inf")
    for _ in range(epochs):
        batches = T.equal_length_batches(lengths, hp["batch_size"], rng)
        start = time.perf_counter()
        T.train_epoch(bundle.model, data, batches, optimizer, singletons, hp)
        epoch = min(epoch, time.perf_counter() - start)
    rate = 0.0
    for _ in range(3):
        start = time.perf_counter()
        T.predict(bundle, dev, hp["eval_batch_size"])
        rate = max(rate, len(dev) / (time.perf_counter() - start))
    tokens = sum(len(s.tokens) for s in dev)
    ceiling = len(dev) / lstm_seconds(bundle.model, tokens, hp["eval_batch_size"])
    return {"epoch": epoch, "sentences_per_s": rate, "ceiling": ceiling}


def lstm_seconds(model, tokens: int, rows: int, repeat: int = 50) -> float:
    """Time the word BiLSTM's matrix products alone would take over ``tokens`` tokens:
    per layer and direction, each token's gate pre-activations are one row of
    [input, state] x [4 * hidden] weights, timed in blocks of ``rows`` (a batch)."""
    import torch

    seconds = 0.0
    for lstm in [model.lstm, *model.upper]:
        width = lstm.input_size + lstm.hidden_size
        a, b = torch.randn(rows, width), torch.randn(width, 4 * lstm.hidden_size)
        torch.mm(a, b)  # warm-up
        start = time.perf_counter()
        for _ in range(repeat):
            torch.mm(a, b)
        seconds += 2 * tokens / rows * (time.perf_counter() - start) / repeat
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--our-epochs", type=int, default=2, help="epochs timed per variant")
    ap.add_argument("--variants", nargs="+", default=["fast", "bilstm_cnn_crf", "deep_lexical"])
    args = ap.parse_args()

    os.environ.update(ONE_THREAD)
    from pipeline.numerics import apply_configured

    apply_configured()
    from pipeline import config
    from pipeline.numerics import cpuinfo

    cfg = config.load(overlays=[PROFILE])
    train, dev = ewt(cfg)
    print(f"CPU: {cpuinfo('model name')}; {len(train)} train, {len(dev)} dev sentences; "
          "one thread each", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "ewt.json"
        corpus.write_text(json.dumps({split: [[s.tokens, s.tags] for s in sents]
                                      for split, sents in (("train", train), ("dev", dev))}))
        script = Path(tmp) / "spacy_side.py"
        script.write_text(SPACY_SIDE)
        out = subprocess.run([str(spacy_python()), str(script), str(corpus), str(args.epochs)],
                             capture_output=True, text=True, cwd=tmp,
                             env={**os.environ, **ONE_THREAD})
    if out.returncode:
        sys.exit(f"the spaCy side failed:\n{out.stderr[-3000:]}")
    peer = json.loads(out.stdout.splitlines()[-1])
    print(f"spaCy {peer['version']}: epochs {[round(s, 1) for s in peer['epochs']]} s; "
          f"EWT dev UPOS {100 * peer['upos']:.2f} (best epoch {100 * peer['best_upos']:.2f})")
    rows = [("spaCy tagger (CPU default)", peer)]
    for variant in args.variants:
        rows.append((variant, ours(variant, cfg, train, dev, args.our_epochs)))
    print("| tagger | epoch on EWT train | x spaCy | inference on EWT dev | x spaCy "
          "| ceiling: BiLSTM products alone |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, row in rows:
        ceiling = f"{row['ceiling']:,.0f} sentences/s" if "ceiling" in row else ""
        print(f"| {name} | {row['epoch']:.1f} s | {row['epoch'] / peer['epoch']:.2f} | "
              f"{row['sentences_per_s']:,.0f} sentences/s | "
              f"{row['sentences_per_s'] / peer['sentences_per_s']:.2f} | {ceiling} |")


if __name__ == "__main__":
    main()
