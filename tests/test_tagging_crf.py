"""The vectorised CRF against brute-force enumeration of every tag path."""

from __future__ import annotations

import itertools

import pytest
import torch

from pipeline.models.crf import CRF


def random_crf(num_tags: int, gen: torch.Generator) -> CRF:
    crf = CRF(num_tags)
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return crf


def brute_force(crf: CRF, emissions: torch.Tensor, length: int) -> tuple[float, list[int]]:
    """log Z and the best path of one sentence by scoring all T^n paths."""
    num_tags = emissions.size(1)
    scores = {}
    for path in itertools.product(range(num_tags), repeat=length):
        s = crf.start[path[0]] + crf.end[path[-1]]
        s = s + sum(emissions[i, t] for i, t in enumerate(path))
        s = s + sum(crf.transitions[a, b] for a, b in zip(path, path[1:], strict=False))
        scores[path] = s.item()
    log_z = torch.logsumexp(torch.tensor(list(scores.values()), dtype=torch.float64), 0)
    return log_z.item(), list(max(scores, key=scores.get))


def padded_case(gen: torch.Generator, num_tags: int, lengths: list[int]):
    batch, longest = len(lengths), max(lengths)
    emissions = torch.randn(batch, longest, num_tags, generator=gen, dtype=torch.float64)
    mask = torch.arange(longest).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    tags = torch.randint(num_tags, (batch, longest), generator=gen) * mask
    return emissions, tags, mask


@pytest.mark.parametrize("seed", range(6))
def test_log_partition_and_viterbi_match_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    num_tags = int(torch.randint(2, 5, (1,), generator=gen))
    lengths = torch.randint(1, 5, (4,), generator=gen).tolist()
    crf = random_crf(num_tags, gen).double()
    emissions, tags, mask = padded_case(gen, num_tags, lengths)
    log_z = crf.log_partition(emissions, mask)
    best = crf.decode(emissions, mask)
    for b, n in enumerate(lengths):
        want_z, want_path = brute_force(crf, emissions[b], n)
        assert log_z[b].item() == pytest.approx(want_z, abs=1e-9)
        assert best[b, :n].tolist() == want_path
        assert best[b, n:].eq(0).all()


def test_likelihood_is_a_distribution_over_paths():
    gen = torch.Generator().manual_seed(7)
    crf = random_crf(3, gen).double()
    emissions = torch.randn(1, 3, 3, generator=gen, dtype=torch.float64)
    mask = torch.ones(1, 3, dtype=torch.bool)
    total = sum(
        crf.log_likelihood(emissions, torch.tensor([path]), mask).exp().item()
        for path in itertools.product(range(3), repeat=3)
    )
    assert total == pytest.approx(1.0, abs=1e-9)


def test_padding_never_changes_a_score():
    gen = torch.Generator().manual_seed(3)
    crf = random_crf(5, gen).double()
    emissions, tags, mask = padded_case(gen, 5, [2, 7, 4])
    batch_ll = crf.log_likelihood(emissions, tags, mask)
    batch_best = crf.decode(emissions, mask)
    for b, n in enumerate([2, 7, 4]):
        alone = (emissions[b:b + 1, :n], tags[b:b + 1, :n], mask[b:b + 1, :n])
        assert crf.log_likelihood(*alone).item() == pytest.approx(batch_ll[b].item(), abs=1e-12)
        assert crf.decode(alone[0], alone[2])[0].tolist() == batch_best[b, :n].tolist()
    # garbage in padded emission slots must not leak into the scores either
    noisy = emissions.masked_fill(~mask.unsqueeze(2), 1e3)
    assert torch.allclose(crf.log_likelihood(noisy, tags, mask), batch_ll)
    assert torch.equal(crf.decode(noisy, mask), batch_best)


def test_gradients_flow_to_all_parameters():
    gen = torch.Generator().manual_seed(0)
    crf = random_crf(4, gen)
    emissions, tags, mask = padded_case(gen, 4, [3, 1])
    emissions = emissions.float().requires_grad_()
    (-crf.log_likelihood(emissions, tags, mask).sum()).backward()
    for p in (*crf.parameters(), emissions):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert emissions.grad[1, 1:].abs().sum() == 0  # padding gets no gradient
