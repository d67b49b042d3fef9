"""The paper profiles set the budgets their comments state (an overlay is a contract)."""

from pathlib import Path

from pipeline import config, workflow

ROOT = Path(__file__).resolve().parents[1]


def merged(*profiles: str) -> dict:
    """params.yaml with the overlays stacked in order, as `--configfile A B` does."""
    return config.load(ROOT / "params.yaml", overlays=[str(ROOT / "configs" / p) for p in profiles])


def test_mnist_test_profile_sets_its_stated_budgets():
    cfg = merged("paper-mnist-test.yaml")
    methods = cfg["clustering"]["methods"]
    assert cfg["seeds"] == [0, 1, 2, 3, 4]
    assert list(cfg["clustering"]["datasets"]) == ["mnist_test"]
    ae = cfg["clustering"]["autoencoder"]
    assert ae["dims"] == [500, 500, 2000, 10]
    assert (ae["optimizer"], ae["lr"], ae["epochs"], ae["layerwise_epochs"]) == ("adam", 0.001,
                                                                                200, 0)
    assert ae["augment"] == methods["dec_da"]["augment"] == {"rotation": 10, "shift": 0.1}
    assert methods["dec"]["augment"] is None and methods["idec"]["augment"] is None
    assert ae["monitor"]["every"] == 25 and ae["monitor"]["n_init"] == 20
    assert methods["dec_da"]["update_interval"] == 30
    assert {k: v for k, v in methods["dec_da"].items() if k != "augment"} == {
        k: v for k, v in methods["dec"].items() if k != "augment"}
    assert methods["dec"]["update_interval"] == methods["idec"]["update_interval"] == 30
    assert (methods["dec"]["optimizer"], methods["dec"]["lr"]) == ("sgd", 0.01)
    assert (methods["idec"]["gamma"], methods["idec"]["optimizer"]) == (0.1, "adam")
    assert (methods["dcn"]["lambda"], methods["dcn"]["n_init"],
            methods["dcn"]["initial_count"]) == (2.0, 10, 100)
    assert "n2d" in cfg["clustering"]["models"]


def test_tagging_profile_runs_the_ablations_on_ewt_and_the_export():
    cfg = merged("paper-tagging.yaml")
    assert cfg["seeds"] == [1, 2, 3]
    assert set(cfg["tagging"]["corpora"]) == {"ud_ewt", "uner_ewt_dev"}
    models = cfg["tagging"]["models"]
    assert models[:4] == ["bilstm_cnn_crf", "bilstm_cnn_softmax", "bilstm_crf", "bilstm_softmax"]
    assert "deep" in models and all(cfg["tagging"]["variants"][m] for m in models)
    # transfer from EWT train only: the export's sentences are EWT dev
    assert cfg["tagging"]["transfer_corpus"] == "ud_ewt"
    assert cfg["tagging"]["corpora"]["ud_ewt"]["train"].endswith("en_ewt-ud-train.conllu.xz")
    assert workflow.tagging_models(cfg, "uner_ewt_dev") == models
    assert "deep_transfer" not in workflow.tagging_models(cfg, "ud_ewt")
    assert cfg["tagging"]["trainer"]["max_epochs"] == 20


def test_the_tried_active_learning_overlays_change_only_what_they_state():
    """docs/active-learning.md compares them with the profile's own rounds: same data, seeds,
    tagger, queries and seed set, and a round at 10 % of the pool's tokens in both."""
    profile = merged("active-learning.yaml")
    base = profile["active_learning"]["simulation"]
    for overlay, warm_start, rounds_to_10 in [("active-learning-warm-start.yaml", True, 2),
                                              ("active-learning-small-steps.yaml", False, 6)]:
        cfg = merged("active-learning.yaml", overlay)
        sim = cfg["active_learning"]["simulation"]
        assert {k: v for k, v in cfg.items() if k != "active_learning"} == {
            k: v for k, v in profile.items() if k != "active_learning"}
        assert cfg["active_learning"]["query"] == profile["active_learning"]["query"]
        assert (sim["corpora"], sim["successor"], sim["tagger"]) == (["ud_ewt"], None,
                                                                      base["tagger"])
        assert sim["strategies"][0] == "random"
        assert set(sim["strategies"]) <= set(base["strategies"])
        assert sim["fractions"][0] == base["fractions"][0] and sim["fractions"][-1] == 0.1
        assert base["fractions"].index(0.1) == 2 and len(sim["fractions"]) - 1 == rounds_to_10
        assert (sim["warm_start"], base["warm_start"]) == (warm_start, False)
