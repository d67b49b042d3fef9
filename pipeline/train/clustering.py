"""Training loops: autoencoder pretraining, then k-means, AE+k-means, DEC, IDEC or DCN.

Every hyper-parameter comes from the ``hp`` mapping (params.yaml); a missing key is a
KeyError. All randomness derives from ``seed``: torch (init, dropout) through
seed_everything, the batch order through its generator, k-means through a random_state
drawn from numpy_rng(seed, "kmeans"). Labels, when given, only feed monitoring curves:
no stopping rule or model choice looks at them.
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


def fit_kmeans(z: np.ndarray, n_clusters: int, hp: Mapping[str, Any], seed: int) -> KMeans:
    """scikit-learn k-means, single-threaded: its multi-threaded sums vary between runs."""
    random_state = int(numpy_rng(seed, "kmeans").integers(2**31 - 1))
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
) -> int:
    """Minibatch training of ``loss_fn(batch_indices)`` for a number of epochs."""
    opt = make_optimizer(params, hp)
    order = batches(n, hp["batch_size"], generator)
    steps_per_epoch = -(-n // hp["batch_size"])
    for _ in progress(range(epochs), desc=name):
        total = torch.zeros((), dtype=torch.float64)  # summed on the device: no sync per step
        for _ in range(steps_per_epoch):
            idx = next(order)
            loss = loss_fn(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total = total.to(loss.device) + loss.detach().double() * len(idx)
        record(history, {name: total.item() / n}, step, log)
        step += 1
    return step


def pretrain_autoencoder(
    x: np.ndarray, hp: Mapping[str, Any], seed: int, device: torch.device, log: LogFn
) -> tuple[Autoencoder, dict[str, list[float]]]:
    """Optional greedy layer-wise denoising pretraining, then end-to-end training (MSE).

    Layer-wise (DEC): encoder layer i and its mirror decoder layer form a shallow
    autoencoder trained on the frozen output of layers < i, with dropout on its input and
    code; ``layerwise_epochs: 0`` skips it. End-to-end: dropout ``input_dropout`` on x.
    """
    generator = seed_everything(seed)
    model = Autoencoder(x.shape[1], hp).to(device)
    data = torch.from_numpy(x).to(device)
    history: dict[str, list[float]] = {}
    drop = torch.nn.functional.dropout
    step = 0
    if hp["layerwise_epochs"] > 0:
        p = hp["layerwise_dropout"]
        for i in range(model.n_layers):
            with torch.no_grad():
                inputs = data
                for j in range(i):
                    inputs = model.encode_layer(j, inputs)

            def shallow_loss(idx: torch.Tensor, i: int = i, inputs: torch.Tensor = inputs):
                h = inputs[idx]
                code = drop(model.encode_layer(i, drop(h, p)), p)
                return ((model.decode_layer(i, code) - h) ** 2).mean()

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

    def loss(idx: torch.Tensor) -> torch.Tensor:
        xb = data[idx]
        _, x_hat = model(drop(xb, hp["input_dropout"]))
        return ((x_hat - xb) ** 2).mean()

    _train_stage(
        model.parameters(), loss, len(data), hp["epochs"], hp, generator, "loss", history, log, step
    )
    return model.cpu().eval(), history


# --------------------------------------------------------------------------- methods


def _kmeans(x, y, n_clusters, autoencoder, hp, seed, generator, device, log) -> ClusteringResult:
    km = fit_kmeans(x, n_clusters, hp, seed)
    history: dict[str, list[float]] = {}
    record(history, {"inertia": float(km.inertia_), **monitor(y, km.labels_)}, 0, log)
    state = {"centroids": torch.from_numpy(km.cluster_centers_.copy())}
    return ClusteringResult(km.labels_.astype(np.int64), state, None, history)


def _ae_kmeans(x, y, n_clusters, autoencoder, hp, seed, generator, device, log) -> ClusteringResult:
    model = copy.deepcopy(autoencoder).to(device)
    z = embed(model, torch.from_numpy(x).to(device), hp["batch_size"]).cpu().numpy()
    km = fit_kmeans(z, n_clusters, hp, seed)
    history: dict[str, list[float]] = {}
    record(history, {"inertia": float(km.inertia_), **monitor(y, km.labels_)}, 0, log)
    state = cpu_state(model, centroids=torch.from_numpy(km.cluster_centers_.copy()))
    return ClusteringResult(km.labels_.astype(np.int64), state, z, history)


def _dec(
    x, y, n_clusters, autoencoder, hp, seed, generator, device, log, gamma=None
) -> ClusteringResult:
    """DEC (gamma None: KL only, encoder trained) or IDEC (reconstruction + gamma * KL).

    Every ``update_interval`` iterations: recompute q on all data, refresh P, and stop once
    fewer than a fraction ``tol`` of hard assignments changed since the previous refresh.
    """
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


def _idec(x, y, n_clusters, autoencoder, hp, seed, generator, device, log) -> ClusteringResult:
    return _dec(x, y, n_clusters, autoencoder, hp, seed, generator, device, log, hp["gamma"])


def _dcn(x, y, n_clusters, autoencoder, hp, seed, generator, device, log) -> ClusteringResult:
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


def _n2d(x, y, n_clusters, autoencoder, hp, seed, generator, device, log) -> ClusteringResult:
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
) -> ClusteringResult:
    """Cluster ``x`` with ``method``; deep methods start from (a copy of) ``autoencoder``."""
    if method not in FITTERS:
        raise ValueError(f"unknown clustering method '{method}' (expected one of {METHODS})")
    if method != "kmeans" and autoencoder is None:
        raise ValueError(f"clustering method '{method}' needs a pretrained autoencoder")
    generator = seed_everything(seed)  # also the batch order of the deep methods
    return FITTERS[method](
        x, y_for_monitoring, n_clusters, autoencoder, hp, seed, generator, device, log
    )
