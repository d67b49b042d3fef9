"""Fully connected autoencoder d-500-500-2000-10 used by AE+k-means, DEC, IDEC and DCN.

Hidden layers use the activation from hp; the bottleneck and the output are linear, as in
DEC (Xie et al. 2016) and its public reimplementations. The layers see the input times
``input_scale`` (DEC's own code feeds MNIST pixels x 0.02); decode() returns input units.
The encoder and decoder are stored layer by layer, so greedy layer-wise pretraining can
train the i-th encoder layer together with its mirror decoder layer as one shallow
denoising autoencoder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "elu": nn.ELU}


def init_linear(layer: nn.Linear, scheme: str, scale: float) -> None:
    """'variance_scaling_uniform': U(-sqrt(3 scale / fan_in), +...) and zero bias (DEC-keras);
    'normal': N(0, scale^2) and zero bias (DEC's own code, scale 0.01);
    'torch_default' keeps PyTorch's initialisation."""
    if scheme == "variance_scaling_uniform":
        limit = math.sqrt(3.0 * scale / layer.in_features)
        nn.init.uniform_(layer.weight, -limit, limit)
        nn.init.zeros_(layer.bias)
    elif scheme == "normal":
        nn.init.normal_(layer.weight, 0.0, scale)
        nn.init.zeros_(layer.bias)
    elif scheme != "torch_default":
        raise ValueError(f"unknown init scheme '{scheme}'")


class Autoencoder(nn.Module):
    def __init__(self, input_dim: int, hp: Mapping[str, Any]):
        super().__init__()
        self.sizes = [input_dim, *hp["dims"]]
        self.input_scale = float(hp["input_scale"])
        self.activation = hp["activation"]
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{self.activation}'")
        n = len(self.sizes) - 1
        # encoder[i]: sizes[i] -> sizes[i+1]; decoder[i]: sizes[i+1] -> sizes[i] (its mirror).
        self.encoder_layers = nn.ModuleList(
            nn.Linear(self.sizes[i], self.sizes[i + 1]) for i in range(n)
        )
        self.decoder_layers = nn.ModuleList(
            nn.Linear(self.sizes[i + 1], self.sizes[i]) for i in range(n)
        )
        self.act = ACTIVATIONS[self.activation]()
        for layer in [*self.encoder_layers, *self.decoder_layers]:
            init_linear(layer, hp["init"], hp["init_scale"])

    @property
    def n_layers(self) -> int:
        return len(self.encoder_layers)

    @property
    def embedding_dim(self) -> int:
        return self.sizes[-1]

    def encode_layer(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Encoder layer i; the last one (bottleneck) is linear."""
        h = self.encoder_layers[i](h)
        return h if i == self.n_layers - 1 else self.act(h)

    def decode_layer(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Decoder layer i (output size sizes[i]); the one that reconstructs x is linear."""
        h = self.decoder_layers[i](h)
        return h if i == 0 else self.act(h)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.input_scale
        for i in range(self.n_layers):
            x = self.encode_layer(i, x)
        return x

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The reconstruction in input units (the layers work on input_scale * x)."""
        for i in reversed(range(self.n_layers)):
            z = self.decode_layer(i, z)
        return z / self.input_scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, self.decode(z)


@torch.no_grad()
def embed(encoder: Autoencoder, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Encode ``x`` in eval mode, in chunks so a large data set fits in memory."""
    was_training = encoder.training
    encoder.eval()
    z = torch.cat([encoder.encode(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    encoder.train(was_training)
    return z
