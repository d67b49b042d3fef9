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
    # values a library rejects later (issue #30): seeds NumPy, torch or scikit-learn refuse,
    # a seed Snakemake's seed\d+ paths cannot match (the fuzz test found -1)
    ({"seeds": [0, -1]}, "seeds.1: -1 is less than the minimum of 0"),
    ({"seeds": [2**32]}, "seeds.0: 4294967296 is greater than the maximum of 4294967295"),
    ({"report": {"bootstrap_seed": -5}}, "report.bootstrap_seed: -5 is less than the minimum"),
    ({"annotation": {"push": {"sample_seed": 2**40}}}, "annotation.push.sample_seed: "),
    # JSON Schema counts 2.0 as an integer; torch.set_num_threads(2.0) does not
    ({"threads": 2.0}, "threads: 2.0 is not of type 'integer'"),
    ({"seeds": [1.0]}, "seeds.0: 1.0 is not of type 'integer'"),
    ({"clustering": {"autoencoder": {"lr": float("inf")}}},
     "clustering.autoencoder.lr: inf is not a finite number"),
    ({"tagging": {"trainer": {"clip": float("nan")}}}, "tagging.trainer.clip: nan is not a finite"),
    ({"tagging": {"trainer": {"batch_size": 2**64}}},
     "tagging.trainer.batch_size: 18446744073709551616 does not fit a 64-bit integer"),
    ({"annotation": {"interface": {"colors": {True: "#ffffff"}}}},
     "annotation.interface.colors: key True is not a string"),
    ({"clustering": {"datasets": {"my digits": {"format": "sklearn_digits"}}}},
     "clustering.datasets: 'my digits': letters, digits, _ and - only"),
    ({"tagging": {"variants": {"a/b": {"crf": True}}}}, "tagging.variants: 'a/b': letters"),
    ({"annotation": {"labels": ["PER", "NAME OF ORG"]}},
     "annotation.labels.1: 'NAME OF ORG': one word, without whitespace"),
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


@pytest.mark.parametrize("text, where", [
    ("seeds: [0, 1\ndevice: cpu\n", r"params\.yaml:2:7: not valid YAML: expected ',' or ']'"),
    ("seeds: [0]\n  device: cpu\n", r"params\.yaml:2:3: not valid YAML: expected <block end>"),
    ("seeds: [0]\x00\n", r"params\.yaml: not valid YAML: character #x0000 at 10 \(special"),
    ("seeds: [\xff]\n", r"params\.yaml: not utf-8 text: byte 8 \(invalid start byte\)"),
])
def test_bad_yaml_is_one_line_naming_file_line_and_column(tmp_path, text, where):
    """The fuzz test found PyYAML's messages spanning four or five lines."""
    path = tmp_path / "params.yaml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError, match=where) as err:
        config.load(path)
    assert "\n" not in str(err.value)


def test_an_unreadable_params_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read \(No such file"):
        config.load(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r": cannot read \(Is a directory\)"):
        config.load(tmp_path)


def test_an_error_from_an_overlay_names_the_overlay_too(tmp_path):
    overlay = write(tmp_path, {"seeds": [-1]}, "overlay.yaml")
    with pytest.raises(ConfigError, match=rf"params\.yaml \+ {overlay}: seeds\.0: -1"):
        config.load(ROOT / "params.yaml", overlays=[str(overlay)])


def test_the_name_pattern_is_the_snakefile_wildcard_constraint():
    """A data set, corpus or variant the schema accepts is one Snakemake can match."""
    constraints = (ROOT / "Snakefile").read_text().split("wildcard_constraints:")[1]
    pattern = config._validator().schema["$defs"]["name"]["pattern"]
    for wildcard in ("dataset", "corpus", "model", "name"):
        assert f'{wildcard}=r"{pattern.strip("^$").replace("-]", chr(92) + "-]")}"' \
            in constraints


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


def test_config_lists_from_the_command_line_are_read_as_yaml():
    """Snakemake parses `--config seeds='[0,1]'` with YAML's BaseLoader (['0', '1']); the
    Snakefile reads such strings again as params.yaml would, so the README's example works
    and a bad value is still refused by the schema."""
    import subprocess
    import sys
    from pathlib import Path

    assert config.yaml_scalars({"seeds": ["0", "1"], "tagging": {"models": ["fast"]},
                                "lr": "1e-3", "on": "true", "x": "null"}) == {
        "seeds": [0, 1], "tagging": {"models": ["fast"]}, "lr": "1e-3", "on": True, "x": None}
    snakemake = Path(sys.executable).parent / "snakemake"
    root = Path(__file__).resolve().parents[1]
    run = [str(snakemake), "-n", "--cores", "1", "--quiet", "rules"]
    ok = subprocess.run([*run, "--config", "seeds=[0,1]"], cwd=root, capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    bad = subprocess.run([*run, "--config", "seeds=[0,-1]"], cwd=root, capture_output=True,
                         text=True)
    assert bad.returncode != 0
    assert "seeds.1: -1 is less than the minimum of 0" in bad.stdout + bad.stderr
