"""Linear-chain CRF on padded batches: forward algorithm and Viterbi, vectorised over the batch.

Shapes: emissions ``[B, L, T]``, tags ``[B, L]``, mask ``[B, L]`` (bool, True on real tokens,
left-aligned, every sentence at least one token). Padding never changes a score: at padded
steps the forward variables and backpointers carry the last real step through unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CRF(nn.Module):
    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # [from, to]
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Unnormalised log score of the given tag paths, ``[B]``."""
        maskf = mask.to(emissions.dtype)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        trans = self.transitions[tags[:, :-1], tags[:, 1:]]
        last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)
        return (self.start[tags[:, 0]] + (emit * maskf).sum(1)
                + (trans * maskf[:, 1:]).sum(1) + self.end[last])

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """log Z by the forward algorithm, ``[B]``."""
        alpha = self.start + emissions[:, 0]
        for t in range(1, emissions.size(1)):
            step = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), step, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def log_likelihood(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """log p(tags | x) per sentence, ``[B]``."""
        return self.score(emissions, tags, mask) - self.log_partition(emissions, mask)

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Best path per sentence by Viterbi, ``[B, L]`` (0 on padding)."""
        batch, length, num_tags = emissions.shape
        keep = torch.arange(num_tags, device=emissions.device).expand(batch, num_tags)
        delta = self.start + emissions[:, 0]
        pointers = []
        for t in range(1, length):
            best, arg = (delta.unsqueeze(2) + self.transitions).max(dim=1)
            on = mask[:, t].unsqueeze(1)
            delta = torch.where(on, best + emissions[:, t], delta)
            pointers.append(torch.where(on, arg, keep))
        tag = (delta + self.end).argmax(dim=1)
        path = [tag]
        for arg in reversed(pointers):
            tag = arg.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        path.reverse()
        return torch.stack(path, dim=1) * mask
