"""CoNLL-U and IOB2 readers, the conlleval writer and the word-vector reader on small files."""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.conllu import read_conllu
from pipeline.data.embeddings import embedding_matrix, read_vectors
from pipeline.data.iob2 import read_iob2, write_conll
from pipeline.data.sentences import Sentence
from pipeline.io import BadInput

ROOT = Path(__file__).resolve().parents[1]
UNER_DEV = ROOT / "../shared/data/uner-ewt/en_ewt-ud-dev.iob2"


def row(*fields: str) -> str:
    return "\t".join(fields) + "\n"


CONLLU = (
    "# newdoc id = doc1\n"
    "# sent_id = s1\n"
    "# text = I don't know.\n"
    + row("1", "I", "I", "PRON", "PRP", "_", "3", "nsubj", "_", "_")
    + row("2-3", "don't", "_", "_", "_", "_", "_", "_", "_", "_")
    + row("2", "do", "do", "AUX", "VBP", "_", "3", "aux", "_", "_")
    + row("3", "n't", "not", "PART", "RB", "_", "4", "advmod", "_", "_")
    + row("3.1", "know", "know", "VERB", "VB", "_", "_", "_", "0:root", "_")
    + row("4", "know", "know", "VERB", "VB", "_", "0", "root", "_", "_")
    + row("5", ".", ".", "PUNCT", ".", "_", "4", "punct", "_", "_")
    + "\n"
    + row("1", "Hi", "hi", "INTJ", "UH", "_", "0", "root", "_", "_")
)


def test_conllu_skips_multiword_tokens_and_empty_nodes(tmp_path):
    path = tmp_path / "a.conllu"
    path.write_text(CONLLU)
    first, second = read_conllu(path)
    assert first.id == "s1"
    assert first.tokens == ["I", "do", "n't", "know", "."]
    assert first.tags == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert first.meta == {"text": "I don't know.", "doc": "doc1"}
    assert second.id == "a.conllu:1"  # no sent_id: file name and index
    assert second.tokens == ["Hi"]


def test_conllu_xpos_column_and_compressed_files(tmp_path):
    xz, gz = tmp_path / "a.conllu.xz", tmp_path / "a.conllu.gz"
    with lzma.open(xz, "wt", encoding="utf-8") as f:
        f.write(CONLLU)
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write(CONLLU)
    for path in (xz, gz):
        sentences = read_conllu(path, column="xpos")
        assert sentences[0].tags == ["PRP", "VBP", "RB", "VB", "."]


def test_conllu_aux_columns_follow_the_words_not_ranges_or_empty_nodes(tmp_path):
    path = tmp_path / "a.conllu"
    path.write_text(CONLLU.replace("PRON\tPRP\t_", "PRON\tPRP\tCase=Nom|Number=Sing"))
    first, second = read_conllu(path, aux=("xpos", "feats"))
    assert first.tags == ["PRON", "AUX", "PART", "VERB", "PUNCT"]  # upos still the tags
    assert first.aux == {"xpos": ["PRP", "VBP", "RB", "VB", "."],
                         "feats": ["Case=Nom|Number=Sing", "_", "_", "_", "_"]}
    assert second.aux == {"xpos": ["UH"], "feats": ["_"]}
    assert read_conllu(path)[0].aux == {}  # no aux asked: none kept


def test_conllu_bad_aux_value_names_its_column(tmp_path):
    path = tmp_path / "bad.conllu"
    path.write_text("# sent_id = x\n"
                    + row("1", "I", "I", "PRON", "PRP", "", "0", "root", "_", "_"))
    assert read_conllu(path)[0].tags == ["PRON"]  # feats not read, so not checked
    with pytest.raises(BadInput, match=r"bad\.conllu:2: bad feats tag ''"):
        read_conllu(path, aux=("feats",))


@pytest.mark.parametrize("bad, problem", [
    (row("1", "I", "I", "PRON", "PRP", "_", "0", "root", "_"), "expected 10"),
    (row("2", "I", "I", "PRON", "PRP", "_", "0", "root", "_", "_"), "word id '2'"),
    (row("1", "I", "I", "", "PRP", "_", "0", "root", "_", "_"), "bad upos tag"),
])
def test_conllu_bad_line_names_file_line_and_problem(tmp_path, bad, problem):
    path = tmp_path / "bad.conllu"
    path.write_text("# sent_id = x\n" + bad)
    with pytest.raises(ValueError, match=rf"bad\.conllu:2: .*{problem}"):
        read_conllu(path)


def test_conllu_corrupt_xz_names_the_file(tmp_path):
    path = tmp_path / "c.conllu.xz"
    data = bytearray(lzma.compress(CONLLU.encode() * 50))
    data[40:48] = b"\x00" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(BadInput, match=r"c\.conllu\.xz:\d+: corrupt or truncated compressed"):
        read_conllu(path)


def test_conllu_latin1_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.conllu"
    text = CONLLU + "\n# sent_id = s2\n" + row("1", "café", "café", "NOUN", "NN", *["_"] * 5)
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(BadInput, match=r"latin1\.conllu:\d+: not UTF-8 text"):
        read_conllu(path)
    # the iob2 reader shares the line reader
    with pytest.raises(BadInput, match=r"latin1\.conllu:\d+: not UTF-8 text"):
        read_iob2(path)


def test_real_ewt_dev_reads_whole():
    sentences = read_conllu(ROOT / "data/corpora/en_ewt-ud-dev.conllu.xz")  # committed copy
    assert len(sentences) == 2001
    assert sum(len(s.tokens) for s in sentences) == 25147  # syntactic words, ranges skipped


IOB2 = (
    "# sent_id = e1\n# text = tampa bay rocks\n"
    + row("1", "tampa", "B-LOC", "-", "stephen")
    + row("2", "bay", "I-LOC", "-", "stephen")
    + row("3", "rocks", "O", "-", "-")
    + "\n"
    + row("1", "Ann", "B-PER", "-", "x")
)


def test_iob2_reads_uner_layout(tmp_path):
    path = tmp_path / "a.iob2"
    path.write_text(IOB2)
    first, second = read_iob2(path)
    assert (first.id, first.tokens, first.tags) == ("e1", ["tampa", "bay", "rocks"],
                                                     ["B-LOC", "I-LOC", "O"])
    assert first.meta["text"] == "tampa bay rocks"
    assert (second.id, second.tags) == ("a.iob2:1", ["B-PER"])


@pytest.mark.parametrize("tags, problem", [
    (["B_LOC", "O"], r"a\.iob2:3: bad tag 'B_LOC'"),
    (["O", "I-LOC"], r"a\.iob2:4: 'I-LOC' follows 'O'"),
    (["B-PER", "I-LOC"], r"'I-LOC' follows 'B-PER'"),
])
def test_iob2_rejects_bad_tags(tmp_path, tags, problem):
    path = tmp_path / "a.iob2"
    path.write_text("# sent_id = e1\n# text = a b\n"
                    + "".join(row(str(i + 1), "w", t) for i, t in enumerate(tags)))
    with pytest.raises(ValueError, match=problem):
        read_iob2(path)


@pytest.mark.skipif(not UNER_DEV.exists(), reason="needs ../shared/data/uner-ewt beside the repo")
def test_real_uner_dev_reads_whole():
    sentences = read_iob2(UNER_DEV)
    assert len(sentences) == 2001
    assert sum(t.startswith("B-") for s in sentences for t in s.tags) == 399 + 224 + 343


def test_write_conll_is_conlleval_input(tmp_path):
    sentences = [Sentence("a", ["New York", "is"], ["B-LOC", "O"]), Sentence("b", ["x"], ["O"])]
    path = tmp_path / "out" / "pred.conll"
    write_conll(path, sentences, [["B-LOC", "B-LOC"], ["O"]])
    assert path.read_text() == "New_York B-LOC B-LOC\nis O B-LOC\n\nx O O\n\n"
    with pytest.raises(ValueError, match="2 tokens but 1 predicted"):
        write_conll(path, sentences, [["O"], ["O"]])
    assert path.read_text().startswith("New_York")  # a failed write leaves the old file


@pytest.mark.parametrize("header", [True, False])
def test_vectors_with_and_without_word2vec_header(tmp_path, header):
    path = tmp_path / "vec.txt"
    lines = ["The 1 2 3", "the 9 9 9", "cat 0.5 -1 2e-1", "dog 4 5 6"]
    path.write_text(("4 3\n" if header else "") + "\n".join(lines) + "\n")
    vectors = read_vectors(path, lowercase=True)
    assert sorted(vectors) == ["cat", "dog", "the"]
    np.testing.assert_allclose(vectors["the"], [1, 2, 3])  # first casing wins
    np.testing.assert_allclose(vectors["cat"], [0.5, -1, 0.2])
    vocab = ["<pad>", "<unk>", "the", "cat", "zebra"]
    matrix, found = embedding_matrix(path, vocab, 3, True, np.random.default_rng(0))
    assert found == 2 and matrix.shape == (5, 3) and matrix.dtype == np.float32
    np.testing.assert_allclose(matrix[3], [0.5, -1, 0.2])
    assert np.abs(matrix[4]).max() <= np.sqrt(3 / 3)  # unseen: Ma & Hovy uniform init


def test_vectors_errors_name_the_line(tmp_path):
    path = tmp_path / "vec.txt"
    path.write_text("a 1 2\nb 1\n")
    with pytest.raises(ValueError, match=r"vec\.txt:2: expected a word and 2 numbers"):
        read_vectors(path)
    path.write_text("a 1 2\n")
    with pytest.raises(ValueError, match="word_dim is 3"):
        embedding_matrix(path, ["a"], 3, False, np.random.default_rng(0))


# --- what reads but a later step would reject or mishandle (issue #30)

@pytest.mark.parametrize("reader, text, problem", [
    (read_iob2, "", r"e\.txt: no sentences \(an empty file\?\)"),
    (read_conllu, "\n\n# a comment only\n", r"e\.txt:3: sentence with no words"),
    (read_conllu, "\n\n", r"e\.txt: no sentences"),
    (read_iob2, IOB2.replace("# sent_id = e1", "# sent_id = x") + "\n# sent_id = x\n"
     + row("1", "Bo", "B-PER"), r"e\.txt:9: sentence id 'x' was used already at .*e\.txt:1"),
    (read_conllu, CONLLU.replace("\n\n", "\n\n# sent_id = s1\n"),
     r"e\.txt:12: sentence id 's1' was used already at .*e\.txt:1: ids must be unique"),
    (read_iob2, row("1", "New York", "B-LOC"), r"e\.txt:1: token 'New York' is empty or has "
                                                r"whitespace inside"),
    (read_iob2, row("1", "", "O"), r"e\.txt:1: token '' is empty"),
    (read_conllu, row("1", "a\u00a0b", "a", "NOUN", "NN", *["_"] * 5), r"token 'a\\xa0b'"),
    (read_conllu, row("1", "a", "a", "NOUNS", "NN", *["_"] * 5),
     r"e\.txt:1: upos tag 'NOUNS' is not one of the 17 Universal POS tags"),
])
def test_readers_refuse_what_a_later_step_cannot_use(tmp_path, reader, text, problem):
    """An empty file gave "split 'train' is empty" without its name; a repeated id or a
    token with a space inside went through to the splits and predictions.conll."""
    path = tmp_path / "e.txt"
    path.write_text(text)
    with pytest.raises(BadInput, match=problem):
        reader(path)


def test_xpos_and_feats_may_hold_any_tag(tmp_path):
    path = tmp_path / "a.conllu"
    path.write_text(row("1", "a", "a", "X", "NNX", "Odd=Yes", "0", "root", "_", "_"))
    assert read_conllu(path, column="xpos", aux=("feats",))[0].tags == ["NNX"]
