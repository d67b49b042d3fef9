"""DEC (Xie et al. 2016) and IDEC (Guo et al. 2017): an encoder plus learnable centroids.

Soft assignment q_ij is a Student's t kernel between embedding z_i and centroid mu_j; the
target p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j') with f_j = sum_i q_ij sharpens
confident assignments and divides by cluster frequency so large clusters do not swallow
small ones. Training minimises KL(P || Q) with P held fixed between refreshes; IDEC keeps
the decoder and adds the reconstruction loss so the embedding keeps local structure.
The training loop is in pipeline.train.clustering.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.autoencoder import Autoencoder


def soft_assignment(z: torch.Tensor, centroids: torch.Tensor, alpha: float) -> torch.Tensor:
    """q_ij proportional to (1 + ||z_i - mu_j||^2 / alpha)^(-(alpha + 1) / 2); rows sum to 1."""
    dist2 = ((z.unsqueeze(1) - centroids.unsqueeze(0)) ** 2).sum(dim=2)
    q = (1.0 + dist2 / alpha) ** (-(alpha + 1.0) / 2.0)
    return q / q.sum(dim=1, keepdim=True)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """p_ij = (q_ij^2 / f_j) normalised over j, with soft cluster frequencies f_j = sum_i q_ij."""
    weight = q**2 / q.sum(dim=0)
    return weight / weight.sum(dim=1, keepdim=True)


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) summed over clusters, averaged over samples; p_ij = 0 contributes 0."""
    return (torch.xlogy(p, p) - p * torch.log(q)).sum(dim=1).mean()


class DEC(nn.Module):
    """Autoencoder (DEC uses only its encoder, IDEC also its decoder) plus centroids."""

    def __init__(self, autoencoder: Autoencoder, centroids: torch.Tensor, alpha: float):
        super().__init__()
        self.autoencoder = autoencoder
        self.centroids = nn.Parameter(centroids.clone())
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (q, z, reconstruction)."""
        z, x_hat = self.autoencoder(x)
        return soft_assignment(z, self.centroids, self.alpha), z, x_hat
