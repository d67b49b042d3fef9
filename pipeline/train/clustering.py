"""Training loops: autoencoder pretraining, then k-means, AE+k-means, DEC, DEC-DA, IDEC, DCN
or N2D.

Every hyper-parameter comes from the ``hp`` mapping (params.yaml); a missing key is a
KeyError. All randomness derives from ``seed``: torch (init, dropout) through
seed_everything, the batch order and the augmentations' draws through its generator,
k-means through a random_state drawn from numpy_rng(seed, "kmeans"). Labels, when given,
only feed monitoring curves: no stopping rule or model choice looks at them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from pipeline.data.augment import random_affine
from pipeline.evaluate.clustering import clustering_metrics
from pipeline.models.autoencoder import Autoencoder, embed
from pipeline.models.dcn import dcn_loss, nearest_centroid, update_centroids
from pipeline.models.dec import DEC, kl_divergence, soft_assignment, target_distribution
from pipeline.progress import progress
from pipeline.seeding import numpy_rng, seed_everything

LogFn = Callable[[dict[str, float], int], None]


@dataclass
class ClusteringResult:
    assignments: np.ndarray  # int64, one cluster index per sample
    state: dict[str, torch.Tensor]  # enough to recompute the assignments
    embedding: np.ndarray | None  # final embedding (None for k-means on raw features)
    history: dict[str, list[float]] = field(default_factory=dict)


# ---------------------------------------------------------------------------- helpers


def make_optimizer(params, hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    name = hp["optimizer"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"])
    if name == "adam":
        return torch.optim.Adam(params, lr=hp["lr"])
    raise ValueError(f"unknown optimizer '{name}' (expected sgd or adam)")


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless minibatch indices: a fresh seeded permutation every epoch."""
    while True:
        perm = torch.randperm(n, generator=generator)
        yield from perm.split(batch_size)


def fit_kmeans(
    z: np.ndarray, n_clusters: int, hp: Mapping[str, Any], seed: int, purpose: str = "kmeans"
) -> KMeans:
    """scikit-learn k-means, single-threaded: its multi-threaded sums vary between runs."""
    random_state = int(numpy_rng(seed, purpose).integers(2**31 - 1))
    km = KMeans(
        n_clusters, n_init=hp["n_init"], max_iter=hp["kmeans_max_iter"], random_state=random_state
    )
    with threadpool_limits(1):
        km.fit(np.ascontiguousarray(z))
    return km


def monitor(y: np.ndarray | None, pred: np.ndarray) -> dict[str, float]:
    """ACC/NMI for the curves only; empty without labels."""
    if y is None:
        return {}
    m = clustering_metrics(y, pred)
    return {"acc": m["acc"], "nmi": m["nmi"]}


def record(
    history: dict[str, list[float]], metrics: dict[str, float], step: int, log: LogFn
) -> None:
    for key, value in metrics.items():
        history.setdefault(key, []).append(value)
    log(metrics, step)


def cpu_state(module: torch.nn.Module, **extra: torch.Tensor) -> dict[str, torch.Tensor]:
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    state.update({k: v.detach().cpu().clone() for k, v in extra.items()})
    return state


# ----------------------------------------------------------------- autoencoder pretraining


def _train_stage(
    params,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    epochs: int,
    hp: Mapping[str, Any],
    generator: torch.Generator,
    name: str,
    history: dict[str, list[float]],
    log: LogFn,
    step: int,
    after_epoch: Callable[[int, int], None] | None = None,
) -> int:
    """Minibatch training of ``loss_fn(batch_indices)`` for a number of epochs.

    ``hp["lr_step"]`` (null: constant) multiplies the learning rate by ``gamma`` every
    ``every`` epochs, as DEC's own pretraining does (x0.1 every 20k iterations).
    """
    opt = make_optimizer(params, hp)
    step_lr = hp["lr_step"]
    schedule = step_lr and torch.optim.lr_scheduler.StepLR(opt, step_lr["every"], step_lr["gamma"])
    order = batches(n, hp["batch_size"], generator)
    steps_per_epoch = -(-n // hp["batch_size"])
    for epoch in progress(range(epochs), desc=name):
        total = torch.zeros((), dtype=torch.float64)  # summed on the device: no sync per step
        for _ in range(steps_per_epoch):
            idx = next(order)
            loss = loss_fn(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total = total.to(loss.device) + loss.detach().double() * len(idx)
        if schedule:
            schedule.step()
        record(history, {name: total.item() / n}, step, log)
        if after_epoch:
            after_epoch(epoch + 1, step)
        step += 1
    return step


def reconstruction_error(x_hat: torch.Tensor, x: torch.Tensor, reduction: str) -> torch.Tensor:
    """'mean': per-element mean squared error (Keras' mse); 'half_sum': half the squared error
    summed over a sample's inputs, averaged over the batch (DEC's LinearRegressionOutput)."""
    if reduction == "mean":
        return ((x_hat - x) ** 2).mean()
    if reduction == "half_sum":
        return 0.5 * ((x_hat - x) ** 2).sum(dim=1).mean()
    raise ValueError(f"unknown reconstruction '{reduction}' (expected mean or half_sum)")


def pretrain_autoencoder(
    x: np.ndarray,
    hp: Mapping[str, Any],
    seed: int,
    device: torch.device,
    log: LogFn,
    image_shape: tuple[int, int] | None = None,
    y_for_monitoring: np.ndarray | None = None,
) -> tuple[Autoencoder, dict[str, list[float]]]:
    """Optional greedy layer-wise denoising pretraining, then end-to-end training.

    Layer-wise (DEC, piiswrong/dec): encoder layer i and its mirror decoder layer form a
    shallow autoencoder trained on the frozen output of layers < i, with dropout on its
    input (not on the pixels) and on its code (not on the bottleneck); ``layerwise_epochs: 0``
    skips it. End-to-end: dropout ``input_dropout`` on x. With ``augment`` set and an
    image data set, each batch is randomly shifted and rotated (DEC-DA) and reconstructed
    as augmented. Every ``monitor.every`` end-to-end epochs, AE + k-means is scored against
    the labels: a curve to look at, never read by the training.
    """
    generator = seed_everything(seed)
    model = Autoencoder(x.shape[1], hp).to(device)
    data = torch.from_numpy(x).to(device)
    scale = model.input_scale
    history: dict[str, list[float]] = {}
    drop = torch.nn.functional.dropout
    reduction = hp["reconstruction"]
    step = 0
    if hp["layerwise_epochs"] > 0:
        p = hp["layerwise_dropout"]
        for i in range(model.n_layers):
            with torch.no_grad():
                inputs = data * scale
                for j in range(i):
                    inputs = model.encode_layer(j, inputs)
            p_in = p if i > 0 else 0.0
            p_code = p if i < model.n_layers - 1 else 0.0

            def shallow_loss(idx: torch.Tensor, i=i, inputs=inputs, p_in=p_in, p_code=p_code):
                h = inputs[idx]
                code = drop(model.encode_layer(i, drop(h, p_in)), p_code)
                return reconstruction_error(model.decode_layer(i, code), h, reduction)

            layer_params = [
                *model.encoder_layers[i].parameters(),
                *model.decoder_layers[i].parameters(),
            ]
            step = _train_stage(
                layer_params,
                shallow_loss,
                len(data),
                hp["layerwise_epochs"],
                hp,
                generator,
                f"layerwise_loss_{i}",
                history,
                log,
                step,
            )

    augment = hp["augment"] if image_shape else None

    def loss(idx: torch.Tensor) -> torch.Tensor:
        xb = data[idx]
        if augment:
            xb = random_affine(xb, image_shape, augment, generator)
        _, x_hat = model(drop(xb, hp["input_dropout"]))
        return reconstruction_error(x_hat * scale, xb * scale, reduction)

    every = hp["monitor"]["every"] if y_for_monitoring is not None else 0

    def score(epoch: int, step: int) -> None:
        if every and epoch % every == 0:
            z = embed(model, data, hp["batch_size"]).cpu().numpy()
            km = fit_kmeans(z, len(np.unique(y_for_monitoring)), hp["monitor"], seed, "monitor")
            scores = monitor(y_for_monitoring, km.labels_)
            metrics = {"epoch": float(epoch), **{f"ae_kmeans_{k}": v for k, v in scores.items()}}
            record(history, metrics, step, log)

    _train_stage(
        model.parameters(), loss, len(data), hp["epochs"], hp, generator, "loss", history, log,
        step, score,
    )
    return model.cpu().eval(), history


# --------------------------------------------------------------------------- methods


def _kmeans(
    x, y, n_clusters, autoencoder, hp, seed, generator, device, log, image_shape
) -> ClusteringResult:
    km = fit_kmeans(x, n_clusters, hp, seed)
    history: dict[str, list[float]] = {}
    record(history, {"inertia": float(km.inertia_), **monitor(y, km.labels_)}, 0, log)
    state = {"centroids": torch.from_numpy(km.cluster_centers_.copy())}
    return ClusteringResult(km.labels_.astype(np.int64), state, None, history)


def _ae_kmeans(
    x, y, n_clusters, autoencoder, hp, seed, generator, device, log, image_shape
) -> ClusteringResult:
    model = copy.deepcopy(autoencoder).to(device)
    z = embed(model, torch.from_numpy(x).to(device), hp["batch_size"]).cpu().numpy()
    km = fit_kmeans(z, n_clusters, hp, seed)
    history: dict[str, list[float]] = {}
    record(history, {"inertia": float(km.inertia_), **monitor(y, km.labels_)}, 0, log)
    state = cpu_state(model, centroids=torch.from_numpy(km.cluster_centers_.copy()))
    return ClusteringResult(km.labels_.astype(np.int64), state, z, history)


def _dec(
    x, y, n_clusters, autoencoder, hp, seed, generator, device, log, image_shape, gamma=None
) -> ClusteringResult:
    """DEC (gamma None: KL only, encoder trained) or IDEC (reconstruction + gamma * KL).

    Every ``update_interval`` iterations: recompute q on all data, refresh P, and stop once
    fewer than a fraction ``tol`` of hard assignments changed since the previous refresh.
    With ``augment`` set (DEC-DA), the network sees randomly shifted and rotated batches
    while P stays computed on the clean images.
    """
    augment = hp["augment"]
    if augment and image_shape is None:
        raise ValueError("augment is set, but the data set's rows are not square images")
    ae = copy.deepcopy(autoencoder).to(device)
    data = torch.from_numpy(x).to(device)
    z0 = embed(ae, data, hp["batch_size"])
    km = fit_kmeans(z0.cpu().numpy(), n_clusters, hp, seed)
    model = DEC(ae, torch.from_numpy(km.cluster_centers_).to(device), hp["alpha"])
    trained = [*ae.encoder_layers.parameters(), model.centroids]
    if gamma is not None:
        trained += list(ae.decoder_layers.parameters())
    opt = make_optimizer(trained, hp)
    order = batches(len(data), hp["batch_size"], generator)
    previous = torch.from_numpy(km.labels_.astype(np.int64)).to(device)
    history: dict[str, list[float]] = {}
    running, count = torch.zeros((), dtype=torch.float64, device=device), 0
    for it in progress(range(hp["max_iter"]), desc="dec" if gamma is None else "idec"):
        if it % hp["update_interval"] == 0:
            with torch.no_grad():
                q = soft_assignment(embed(ae, data, hp["batch_size"]), model.centroids, model.alpha)
                p = target_distribution(q)
                pred = q.argmax(dim=1)
                delta = (pred != previous).double().mean().item()
                previous = pred
            metrics = {"delta_label": delta, **monitor(y, pred.cpu().numpy())}
            if count:
                metrics["loss"] = running.item() / count
            record(history, metrics, it, log)
            running, count = torch.zeros_like(running), 0
            if it > 0 and delta < hp["tol"]:
                break
        idx = next(order)
        xb = data[idx]
        if augment:
            xb = random_affine(xb, image_shape, augment, generator)
        if gamma is None:
            q_b = soft_assignment(ae.encode(xb), model.centroids, model.alpha)
            loss = kl_divergence(p[idx], q_b)
        else:
            q_b, _, x_hat = model(xb)
            loss = ((x_hat - xb) ** 2).mean() + gamma * kl_divergence(p[idx], q_b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running, count = running + loss.detach(), count + 1
    with torch.no_grad():
        z = embed(ae, data, hp["batch_size"])
        assignments = soft_assignment(z, model.centroids, model.alpha).argmax(dim=1)
    return ClusteringResult(
        assignments.cpu().numpy().astype(np.int64), cpu_state(model), z.cpu().numpy(), history
    )


def _idec(
    x, y, n_clusters, autoencoder, hp, seed, generator, device, log, image_shape
) -> ClusteringResult:
    return _dec(
        x, y, n_clusters, autoencoder, hp, seed, generator, device, log, image_shape, hp["gamma"]
    )


def _dcn(
    x, y, n_clusters, autoencoder, hp, seed, generator, device, log, image_shape
) -> ClusteringResult:
    """Per minibatch: network step (s, M fixed), reassign the batch, move its centroids."""
    ae = copy.deepcopy(autoencoder).to(device)
    data = torch.from_numpy(x).to(device)
    z0 = embed(ae, data, hp["batch_size"])
    km = fit_kmeans(z0.cpu().numpy(), n_clusters, hp, seed)
    centroids = torch.from_numpy(km.cluster_centers_).to(device)
    counts = torch.full(
        (n_clusters,), float(hp["initial_count"]), device=device, dtype=centroids.dtype
    )
    assign = torch.from_numpy(km.labels_.astype(np.int64)).to(device)
    opt = make_optimizer(ae.parameters(), hp)
    order = batches(len(data), hp["batch_size"], generator)
    steps_per_epoch = -(-len(data) // hp["batch_size"])
    history: dict[str, list[float]] = {}
    for epoch in progress(range(hp["epochs"]), desc="dcn"):
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        for _ in range(steps_per_epoch):
            idx = next(order)
            xb = data[idx]
            z, x_hat = ae(xb)
            loss, recon, cluster = dcn_loss(xb, x_hat, z, centroids[assign[idx]], hp["lambda"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                z = ae.encode(xb)
                assign[idx] = nearest_centroid(z, centroids)
                centroids, counts = update_centroids(centroids, counts, z, assign[idx])
            sums += torch.stack([loss, recon, cluster]).detach() * len(idx)
        loss, recon, cluster = (sums / len(data)).tolist()
        with torch.no_grad():
            pred = nearest_centroid(embed(ae, data, hp["batch_size"]), centroids)
        metrics = {
            "loss": loss,
            "reconstruction": recon,
            "cluster": cluster,
            **monitor(y, pred.cpu().numpy()),
        }
        record(history, metrics, epoch, log)
    with torch.no_grad():
        z = embed(ae, data, hp["batch_size"])
        assignments = nearest_centroid(z, centroids)
    state = cpu_state(ae, centroids=centroids, counts=counts)
    return ClusteringResult(
        assignments.cpu().numpy().astype(np.int64), state, z.cpu().numpy(), history
    )


def _n2d(
    x, y, n_clusters, autoencoder, hp, seed, generator, device, log, image_shape
) -> ClusteringResult:
    """N2D (McConville et al. 2020): the autoencoder's embedding -> UMAP -> Gaussian mixture.

    A baseline beside the seeds' methods: the same embedding that k-means reads, clustered
    after a manifold learner. UMAP is seeded, hence single-threaded and deterministic.
    """
    import umap  # imports numba (slow): only when N2D runs

    model = copy.deepcopy(autoencoder).to(device)
    z = embed(model, torch.from_numpy(x).to(device), hp["batch_size"]).cpu().numpy()
    random_state = int(numpy_rng(seed, "n2d").integers(2**31 - 1))
    mapper = umap.UMAP(
        n_components=hp["umap_components"] or n_clusters,
        n_neighbors=hp["umap_neighbors"],
        min_dist=hp["umap_min_dist"],
        metric=hp["umap_metric"],
        random_state=random_state,
        n_jobs=1,
    )
    with threadpool_limits(1):
        u = mapper.fit_transform(z).astype(np.float32)
        gmm = GaussianMixture(
            n_clusters,
            covariance_type=hp["gmm_covariance"],
            n_init=hp["gmm_n_init"],
            random_state=random_state,
        ).fit(u)
    labels = gmm.predict(u).astype(np.int64)
    history: dict[str, list[float]] = {}
    record(history, {"gmm_lower_bound": float(gmm.lower_bound_), **monitor(y, labels)}, 0, log)
    gmm_state = {
        "umap_embedding": torch.from_numpy(u),
        "gmm_weights": torch.from_numpy(gmm.weights_),
        "gmm_means": torch.from_numpy(gmm.means_),
        "gmm_precisions_cholesky": torch.from_numpy(gmm.precisions_cholesky_),
    }
    return ClusteringResult(labels, cpu_state(model, **gmm_state), u, history)


FITTERS = {
    "kmeans": _kmeans,
    "ae_kmeans": _ae_kmeans,
    "dec": _dec,
    "dec_da": _dec,  # DEC-DA (Guo et al. 2018): DEC whose hp set augment
    "idec": _idec,
    "dcn": _dcn,
    "n2d": _n2d,
}
METHODS = tuple(FITTERS)


def fit_clustering(
    method: str,
    x: np.ndarray,
    y_for_monitoring: np.ndarray | None,
    n_clusters: int,
    autoencoder: Autoencoder | None,
    hp: Mapping[str, Any],
    seed: int,
    device: torch.device,
    log: LogFn,
    image_shape: tuple[int, int] | None = None,
) -> ClusteringResult:
    """Cluster ``x`` with ``method``; deep methods start from (a copy of) ``autoencoder``.

    ``image_shape``: the rows' (height, width) when they are images (augmentation needs it).
    """
    if method not in FITTERS:
        raise ValueError(f"unknown clustering method '{method}' (expected one of {METHODS})")
    if method != "kmeans" and autoencoder is None:
        raise ValueError(f"clustering method '{method}' needs a pretrained autoencoder")
    generator = seed_everything(seed)  # also the batch order of the deep methods
    return FITTERS[method](
        x, y_for_monitoring, n_clusters, autoencoder, hp, seed, generator, device, log,
        image_shape,
    )
