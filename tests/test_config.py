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
    ({"seeds": []}, "seeds"),
    ({"seeds": [1, 1]}, "distinct"),
    ({"threads": 0}, "threads"),
    ({"clustering": {"datasets": {"x": {"format": "png"}}}}, "clustering.datasets.x"),
    ({"clustering": {"datasets": {"x": {"format": "idx", "images": "a"}}}}, "needs labels"),
    ({"clustering": {"datasets": {"x": {"format": "npz", "path": {"url": "u"}}}}}, "path"),
    ({"clustering": {"models": ["nope"]}}, "'nope' has no block"),
    ({"tagging": {"corpora": {"c": {"format": "conllu", "train": "t", "column": "lemma"}}}},
     "column must be upos or xpos"),
    ({"tagging": {"corpora": {"c": {"format": "label_studio", "export": "missing"}}}},
     "annotation.exports"),
    ({"tagging": {"models": ["crf9000"]}}, "'crf9000' has no block under tagging.variants"),
    ({"clustering": {"autoencoder": {"augment": {"zoom": 0.1}}}},
     r"clustering.autoencoder.augment: must be null or \{rotation"),
    ({"clustering": {"methods": {"dec_da": {"augment": {"rotation": 10, "shift": 0.6}}}}},
     r"clustering.methods.dec_da.augment: shift must be a fraction"),
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
