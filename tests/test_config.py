from pathlib import Path

import pytest
import yaml

from pipeline import config, workflow
from pipeline.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, data: dict, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_committed_params_validate():
    cfg = config.load(ROOT / "params.yaml")
    assert cfg["seeds"] and all(isinstance(s, int) for s in cfg["seeds"])


def test_overlay_merges_and_null_drops_a_default_entry(tmp_path):
    base = config.read_yaml(ROOT / "params.yaml")
    overlay = write(tmp_path, {
        "seeds": [7],
        "clustering": {"datasets": {"digits": None,
                                    "mine": {"format": "npz", "path": "x.npz"}}},
    }, "overlay.yaml")
    cfg = config.load(ROOT / "params.yaml", overlays=[str(overlay)])
    assert cfg["seeds"] == [7]
    assert list(cfg["clustering"]["datasets"]) == ["mine"]
    # untouched keys survive the merge
    assert cfg["tagging"]["corpora"] == base["tagging"]["corpora"]


@pytest.mark.parametrize("patch, message", [
    ({"seeds": []}, r"seeds: \[\] should be non-empty"),
    ({"seeds": [1, 1]}, "seeds: .* has non-unique elements"),
    ({"threads": 0}, "threads: 0 is less than the minimum of 1"),
    ({"device": "gpu"}, "device: 'gpu' is not one of"),
    # YAML 1.1 reads 1e-3 (no dot) as a string: caught before any job opens a run
    ({"clustering": {"autoencoder": {"lr": "1e-3"}}},
     "clustering.autoencoder.lr: '1e-3' is not of type 'number'"),
    ({"clustering": {"methods": {"dec": {"update_interval": 0}}}},
     "clustering.methods.dec.update_interval: 0 is less than the minimum of 1"),
    ({"clustering": {"autoencoder": {"epochs": -1}}}, "autoencoder.epochs: -1 is less than"),
    ({"tagging": {"trainer": {"max_epochs": 0}}}, "tagging.trainer.max_epochs: 0 is less than"),
    ({"tagging": {"model": {"dropout": 1.5}}}, "tagging.model.dropout: 1.5 is greater than"),
    ({"clustering": {"autoencoder": {"epoch": 3}}},
     "clustering.autoencoder.epoch: unknown key; did you mean 'epochs'"),
    ({"tagging": {"corpora": {"c": {"format": "conllu", "train": "t", "column": "upos",
                                    "overrides": {"lrr": 0.1}}}}},
     "tagging.corpora.c.overrides.lrr: unknown key; did you mean 'lr'"),
    ({"clustering": {"datasets": {"x": {"format": "png"}}}},
     "clustering.datasets.x.format: 'png' is not one of"),
    ({"clustering": {"datasets": {"x": {"format": "idx", "images": "a"}}}}, "needs labels"),
    ({"clustering": {"datasets": {"x": {"format": "npz", "path": {"url": "u"}}}}},
     "clustering.datasets.x.path"),
    ({"clustering": {"models": ["nope"]}}, "clustering.models.0: 'nope' is not one of"),
    ({"clustering": {"models": ["dec_da"], "methods": {"dec_da": None}}},
     "'dec_da' has no block"),
    ({"tagging": {"corpora": {"c": {"format": "conllu", "train": "t", "column": "lemma"}}}},
     "tagging.corpora.c.column: 'lemma' is not one of"),
    ({"tagging": {"corpora": {"c": {"format": "label_studio", "export": "missing"}}}},
     "annotation.exports"),
    ({"tagging": {"models": ["crf9000"]}}, "'crf9000' has no block under tagging.variants"),
    ({"tagging": {"models": ["t"], "variants": {"t": {"crf": True, "transfer": "deep"}}}},
     "tagging.variants.t.transfer: needs tagging.transfer_corpus"),
    ({"tagging": {"transfer_corpus": "ewt_pos_dev", "models": ["t"],
                  "variants": {"t": {"crf": True, "transfer": "nope"}}}},
     "tagging.variants.t.transfer: 'nope' must name a variant without transfer"),
    ({"tagging": {"variants": {"deep": {"char_encoder": "gru"}}}},
     "tagging.variants.deep.char_encoder: 'gru' is not one of"),
    ({"annotation": {"exports": {"uner_ewt_dev": {"source": "server"}}}},
     "annotation.exports.uner_ewt_dev: source: server needs url"),
    ({"annotation": {"exports": {"uner_ewt_dev": {"source": "labelstudio"}}}},
     "annotation.exports.uner_ewt_dev.source: 'labelstudio' is not one of"),
    ({"clustering": {"autoencoder": {"augment": {"zoom": 0.1}}}},
     "clustering.autoencoder.augment"),
    ({"clustering": {"methods": {"dec_da": {"augment": {"rotation": 10, "shift": 0.6}}}}},
     "clustering.methods.dec_da.augment.shift: 0.6 is greater than or equal to the maximum"),
])
def test_bad_params_name_the_key(tmp_path, patch, message):
    base = config.read_yaml(ROOT / "params.yaml")
    path = write(tmp_path, config.deep_merge(base, patch))
    with pytest.raises(ConfigError, match=message) as err:
        config.load(path)
    assert str(path) in str(err.value)


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seeds: [0, 1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(path)


def test_flatten_is_sorted_dotted_and_keeps_lists_whole():
    flat = config.flatten({"b": {"y": 2, "x": [1, 2]}, "a": None}, "p")
    assert flat == {"p.a": "null", "p.b.x": "[1, 2]", "p.b.y": "2"}


def test_stage_params_cover_what_the_stage_reads():
    cfg = config.load(ROOT / "params.yaml")
    values = workflow.param_values("train_tagger", cfg, corpus="uner_ewt_dev",
                                   model=cfg["tagging"]["models"][0])
    assert "device" in values
    assert any(k.startswith("tagging.trainer.") for k in values)
    assert any(k.startswith(f"tagging.variants.{cfg['tagging']['models'][0]}.") for k in values)
    # a dataset's own entry does not leak into another dataset's stage
    pre = workflow.param_values("prepare_clustering", cfg, dataset="digits")
    assert set(pre) == {"clustering.datasets.digits.format"}


def test_url_entries_resolve_into_data_raw():
    spec = {"url": "https://example.org/files/t10k-images.gz", "sha256": "0" * 64}
    assert workflow.raw_file("clustering", "mnist", "images", spec) == \
        "data/raw/clustering/mnist/images/t10k-images.gz"
    assert workflow.raw_file("clustering", "mnist", "images", "a/b.gz") == "a/b.gz"


def test_transfer_variants_start_from_the_pos_model_of_their_seed(tmp_path):
    """A transfer variant depends on its source model (same seed, transfer corpus) and is
    not trained on the transfer corpus itself."""
    base = config.read_yaml(ROOT / "params.yaml")
    path = write(tmp_path, config.deep_merge(base, {"tagging": {
        "transfer_corpus": "ewt_pos_dev", "models": ["bilstm_cnn_crf", "deep", "t"],
        "variants": {"t": {"crf": True, "transfer": "deep"}}}}))
    cfg = config.load(path)
    assert workflow.transfer_source(cfg, "t", 3) == "models/tagging/ewt_pos_dev/deep/seed3/model.pt"
    assert workflow.transfer_source(cfg, "deep", 3) is None
    assert workflow.tagging_models(cfg, "uner_ewt_dev") == ["bilstm_cnn_crf", "deep", "t"]
    assert workflow.tagging_models(cfg, "ewt_pos_dev") == ["bilstm_cnn_crf", "deep"]
    keys = workflow.param_keys("train_tagger", cfg, corpus="uner_ewt_dev", model="t")
    assert "tagging.transfer_corpus" in keys
