"""Same seed -> byte-identical results; different seed -> different weights (tiny digits)."""

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

from pipeline.data.clustering import load_clustering_dataset
from pipeline.evaluate.clustering import unsupervised_accuracy
from pipeline.models.autoencoder import Autoencoder
from pipeline.models.dcn import nearest_centroid
from pipeline.models.dec import soft_assignment
from pipeline.train.clustering import fit_clustering, pretrain_autoencoder, reconstruction_error

CPU = torch.device("cpu")
KM = {"n_init": 2, "kmeans_max_iter": 50, "batch_size": 64}
AE = {
    "dims": [32, 32, 64, 5],
    "activation": "relu",
    "init": "variance_scaling_uniform",
    "init_scale": 1 / 3,
    "optimizer": "adam",
    "lr": 1e-3,
    "batch_size": 64,
    "epochs": 2,
    "input_dropout": 0.1,
    "layerwise_epochs": 1,
    "layerwise_dropout": 0.2,
    "input_scale": 1.0,
    "reconstruction": "mean",
    "lr_step": None,
    "augment": None,
    "monitor": {"every": 0, "n_init": 2, "kmeans_max_iter": 50},
}
DEC = {
    **KM,
    "alpha": 1.0,
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
    "update_interval": 5,
    "tol": 0.0,
    "max_iter": 12,
    "augment": None,
}
HP = {
    "kmeans": KM,
    "ae_kmeans": KM,
    "dec": DEC,
    "dec_da": {**DEC, "augment": {"rotation": 10, "shift": 0.1}},
    "idec": {**DEC, "gamma": 0.1},
    "dcn": {
        **KM,
        "lambda": 0.5,
        "initial_count": 10,
        "optimizer": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "epochs": 2,
    },
    "n2d": {
        "batch_size": 64,
        "umap_components": None,
        "umap_neighbors": 10,
        "umap_min_dist": 0.0,
        "umap_metric": "euclidean",
        "gmm_covariance": "full",
        "gmm_n_init": 1,
    },
}


def no_log(metrics, step):
    assert all(np.isfinite(v) for v in metrics.values())


@pytest.fixture(scope="module")
def digits():
    x, y = load_clustering_dataset("digits", {"format": "sklearn_digits"}, None)
    return x[:200], y[:200]


@pytest.fixture(scope="module")
def autoencoders(digits):
    """(model, history) for seed 0, seed 0 again, and seed 1."""
    x, _ = digits
    return [pretrain_autoencoder(x, AE, seed, CPU, no_log) for seed in (0, 0, 1)]


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pretraining_is_reproducible_and_seed_dependent(autoencoders):
    (first, history), (again, history_again), (other, _) = autoencoders
    assert same_state(first.state_dict(), again.state_dict())
    assert not same_state(first.state_dict(), other.state_dict())
    assert history["loss"] == history_again["loss"] and len(history["loss"]) == AE["epochs"]
    assert [len(history[f"layerwise_loss_{i}"]) for i in range(4)] == [1, 1, 1, 1]


@pytest.mark.parametrize("method", ["ae_kmeans", "dec", "dec_da", "idec", "dcn", "n2d"])
def test_method_is_reproducible_and_seed_dependent(digits, autoencoders, method):
    x, y = digits
    run = [
        fit_clustering(method, x, y, 10, ae, HP[method], seed, CPU, no_log, (8, 8))
        for (ae, _), seed in zip(autoencoders, (0, 0, 1), strict=True)
    ]
    assert run[0].assignments.dtype == np.int64
    assert run[0].assignments.tobytes() == run[1].assignments.tobytes()
    assert same_state(run[0].state, run[1].state)
    assert not same_state(run[0].state, run[2].state)
    # the caller's shared autoencoder is not modified by fine-tuning
    assert same_state(autoencoders[0][0].state_dict(), autoencoders[1][0].state_dict())


@pytest.mark.parametrize("method", ["dec", "idec", "dcn"])
def test_state_reproduces_assignments(digits, autoencoders, method):
    x, _ = digits
    ae = autoencoders[0][0]
    result = fit_clustering(method, x, None, 10, ae, HP[method], 0, CPU, no_log)
    prefix = "autoencoder." if method != "dcn" else ""
    fresh = type(ae)(x.shape[1], AE)
    fresh.load_state_dict(
        {
            k[len(prefix) :]: v
            for k, v in result.state.items()
            if k.startswith(prefix) and k not in ("centroids", "counts")
        }
    )
    with torch.no_grad():
        z = fresh.encode(torch.from_numpy(x))
    np.testing.assert_array_equal(z.numpy(), result.embedding)
    if method == "dcn":
        pred = nearest_centroid(z, result.state["centroids"])
    else:
        pred = soft_assignment(z, result.state["centroids"], DEC["alpha"]).argmax(dim=1)
    np.testing.assert_array_equal(pred.numpy(), result.assignments)


def test_n2d_state_reproduces_assignments_in_umap_space(digits, autoencoders):
    x, _ = digits
    result = fit_clustering("n2d", x, None, 10, autoencoders[0][0], HP["n2d"], 0, CPU, no_log)
    assert result.embedding.shape == (len(x), 10)  # umap_components null -> one per cluster
    gmm = GaussianMixture(10, covariance_type="full")
    gmm.weights_, gmm.means_, gmm.precisions_cholesky_ = (
        result.state[k].numpy()
        for k in ("gmm_weights", "gmm_means", "gmm_precisions_cholesky")
    )
    np.testing.assert_array_equal(result.state["umap_embedding"].numpy(), result.embedding)
    np.testing.assert_array_equal(gmm.predict(result.embedding), result.assignments)
    two = fit_clustering("n2d", x, None, 10, autoencoders[0][0],
                         {**HP["n2d"], "umap_components": 2}, 0, CPU, no_log)
    assert two.embedding.shape == (len(x), 2)


def test_dec_stops_on_tolerance_before_max_iter(digits, autoencoders):
    x, _ = digits
    hp = {**DEC, "tol": 1.0, "max_iter": 100}  # any change below 100 % stops at 1st check
    result = fit_clustering("dec", x, None, 10, autoencoders[0][0], hp, 0, CPU, no_log)
    assert len(result.history["delta_label"]) == 2 and "acc" not in result.history


@pytest.mark.parametrize("interval, refreshes", [(5, [0, 5, 10]), (3, [0, 3, 6, 9])])
def test_dec_refreshes_its_target_every_update_interval(digits, autoencoders, interval,
                                                         refreshes):
    x, y = digits
    steps = []
    hp = {**DEC, "update_interval": interval, "max_iter": 12}
    fit_clustering("dec", x, y, 10, autoencoders[0][0], hp, 0, CPU,
                   lambda metrics, step: steps.append(step))
    assert steps == refreshes


def test_kmeans_on_digits_finds_the_digits():
    x, y = load_clustering_dataset("digits", {"format": "sklearn_digits"}, None)
    hp = {"n_init": 4, "kmeans_max_iter": 100}
    a, b = (fit_clustering("kmeans", x, y, 10, None, hp, 3, CPU, no_log) for _ in range(2))
    assert a.assignments.tobytes() == b.assignments.tobytes()
    assert a.embedding is None and set(a.state) == {"centroids"}
    assert unsupervised_accuracy(y, a.assignments) > 0.65


def test_unknown_method_and_missing_autoencoder(digits):
    x, y = digits
    with pytest.raises(ValueError, match="unknown clustering method 'gmm'"):
        fit_clustering("gmm", x, y, 10, None, KM, 0, CPU, no_log)
    with pytest.raises(ValueError, match="needs a pretrained autoencoder"):
        fit_clustering("dec", x, y, 10, None, DEC, 0, CPU, no_log)


def test_missing_hyper_parameter_is_a_key_error(digits):
    x, _ = digits
    with pytest.raises(KeyError, match="epochs"):
        pretrain_autoencoder(x, {k: v for k, v in AE.items() if k != "epochs"}, 0, CPU, no_log)


def test_dec_da_trains_on_moved_images_and_needs_images(digits, autoencoders):
    x, y = digits
    ae = autoencoders[0][0]
    dec = fit_clustering("dec", x, y, 10, ae, DEC, 0, CPU, no_log, (8, 8))
    dec_da = fit_clustering("dec_da", x, y, 10, ae, HP["dec_da"], 0, CPU, no_log, (8, 8))
    # same k-means start and batch order: only the augmented batches differ
    assert dec.history["delta_label"][0] == dec_da.history["delta_label"][0]
    assert not same_state(dec.state, dec_da.state)
    with pytest.raises(ValueError, match="not square images"):
        fit_clustering("dec_da", x, y, 10, ae, HP["dec_da"], 0, CPU, no_log, None)


def test_monitoring_curve_does_not_steer_pretraining(digits):
    x, y = digits
    hp = {**AE, "layerwise_epochs": 0, "epochs": 4}
    watched = {**hp, "monitor": {**hp["monitor"], "every": 2}}
    plain, plain_history = pretrain_autoencoder(x, hp, 0, CPU, no_log, (8, 8), y)
    model, history = pretrain_autoencoder(x, watched, 0, CPU, no_log, (8, 8), y)
    assert same_state(plain.state_dict(), model.state_dict())
    assert history["loss"] == plain_history["loss"] and "epoch" not in plain_history
    assert history["epoch"] == [2.0, 4.0] and len(history["ae_kmeans_acc"]) == 2
    assert all(0.1 <= acc <= 1.0 for acc in history["ae_kmeans_acc"])


def test_pretraining_augments_images_only(digits):
    x, _ = digits
    hp = {**AE, "layerwise_epochs": 0}
    augmented = {**hp, "augment": {"rotation": 10, "shift": 0.1}}
    plain, _ = pretrain_autoencoder(x, hp, 0, CPU, no_log)
    on_rows, _ = pretrain_autoencoder(x, augmented, 0, CPU, no_log, None)
    on_images, _ = pretrain_autoencoder(x, augmented, 0, CPU, no_log, (8, 8))
    assert same_state(plain.state_dict(), on_rows.state_dict())
    assert not same_state(plain.state_dict(), on_images.state_dict())


def test_learning_rate_steps_after_whole_epochs(digits):
    """gamma 0 stops SGD after the first epoch: three epochs end where one ended."""
    x, _ = digits
    hp = {**AE, "layerwise_epochs": 0, "input_dropout": 0.0, "optimizer": "sgd", "lr": 0.1,
          "momentum": 0.9, "lr_step": {"every": 1, "gamma": 0.0}}
    one, _ = pretrain_autoencoder(x, {**hp, "epochs": 1}, 0, CPU, no_log)
    three, history = pretrain_autoencoder(x, {**hp, "epochs": 3}, 0, CPU, no_log)
    assert same_state(one.state_dict(), three.state_dict())
    assert history["loss"][1] == pytest.approx(history["loss"][2], rel=1e-6)  # batch order
    moving, _ = pretrain_autoencoder(x, {**hp, "epochs": 3, "lr_step": None}, 0, CPU, no_log)
    assert not same_state(one.state_dict(), moving.state_dict())


def test_reconstruction_scales():
    x_hat, x = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    assert reconstruction_error(x_hat, x, "mean").item() == (1 + 4 + 9) / 4
    assert reconstruction_error(x_hat, x, "half_sum").item() == 0.5 * (1 + 4 + 9) / 2
    with pytest.raises(ValueError, match="unknown reconstruction 'sum'"):
        reconstruction_error(x_hat, x, "sum")


def test_input_scale_is_inside_the_autoencoder(digits):
    """Scaled layers, input-unit reconstructions: the embedding of x equals the unscaled
    model's embedding of scale * x."""
    x, _ = digits
    scaled = Autoencoder(x.shape[1], {**AE, "input_scale": 5.0})
    plain = Autoencoder(x.shape[1], AE)
    plain.load_state_dict(scaled.state_dict())
    xt = torch.from_numpy(x)
    with torch.no_grad():
        z, x_hat = scaled(xt)
        z_ref, x_hat_ref = plain(xt * 5.0)
    assert torch.equal(z, z_ref)
    torch.testing.assert_close(x_hat, x_hat_ref / 5.0)
