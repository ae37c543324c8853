"""SimBA: monotone probability, query budget, basis vectors, orders, stopping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch

from freqlens.attacks import SimBA
from freqlens.spectral import dct_bands


@pytest.mark.parametrize("basis, order", [("pixel", "random"), ("dct", "diagonal"), ("dct", "strided")])
@pytest.mark.parametrize("targeted", [False, True])
def test_probability_is_monotone_and_queries_within_budget(mnist_cnn, digits, basis, order, targeted):
    x, y = digits[0][:12], digits[1][:12]
    labels = (y + 1) % 10 if targeted else y
    attack = SimBA(mnist_cnn, eps=0.2, max_queries=80, basis=basis, order=order, targeted=targeted,
                   generator=torch.Generator().manual_seed(0))
    x_adv = attack(x, labels)
    history = attack.history
    steps = history.diff(dim=0)
    assert bool((steps >= 0).all()) if targeted else bool((steps <= 0).all())
    assert history.shape[1] == 12
    assert attack.queries.dtype == torch.long and attack.queries.shape == (12,)
    assert bool((attack.queries >= 1).all()) and bool((attack.queries <= 80).all())
    # the final probability is the model's on the returned image
    with torch.no_grad():
        logits = mnist_cnn.eval()(x_adv)
    probability = logits.softmax(1).gather(1, labels[:, None]).squeeze(1)
    torch.testing.assert_close(probability, history[-1], atol=1e-5, rtol=0)
    # an image that stopped before its budget stopped because it succeeded
    success = logits.argmax(1) == labels if targeted else logits.argmax(1) != labels
    assert bool((success | (attack.queries >= 79)).all())
    moved = history[-1] > history[0] if targeted else history[-1] < history[0]
    assert float(moved.float().mean()) > 0.5  # and the attack does make progress


def test_pixel_basis_changes_each_pixel_by_at_most_eps(mnist_cnn, digits):
    x, y = digits[0][:8], digits[1][:8]
    attack = SimBA(mnist_cnn, eps=0.15, max_queries=200, generator=torch.Generator().manual_seed(0))
    delta = attack(x, y) - x
    assert float(delta.abs().max()) <= 0.15 + 1e-6
    # each accepted step moves one pixel; at most one accepted step per query pair
    changed = (delta.flatten(1) != 0).sum(dim=1)
    assert bool((changed <= attack.queries - 1).all())


def test_dct_steps_are_orthonormal_basis_vectors(mnist_cnn, digits):
    """The DCT directions are scipy's orthonormal 2-D DCT basis vectors, so ‖δ‖₂ = ε·√(accepted)."""
    attack = SimBA(mnist_cnn, basis="dct")
    x = digits[0][:3]
    index = torch.tensor([0, 5 * 28 + 3, 783])
    directions = attack._direction(x, index)
    for k, flat in enumerate(index.tolist()):
        coefficients = np.zeros((28, 28))
        coefficients[divmod(flat, 28)] = 1.0
        expected = scipy.fft.idctn(coefficients, norm="ortho")
        np.testing.assert_allclose(directions[k, 0].numpy(), expected, atol=1e-6)
    x, y = 0.25 + 0.5 * digits[0][:6], digits[1][:6]  # away from 0 and 1: no clipping
    attack = SimBA(mnist_cnn, eps=0.1, max_queries=60, basis="dct", generator=torch.Generator().manual_seed(0))
    delta = attack(x, y) - x
    accepted = (attack.history.diff(dim=0) < 0).sum(dim=0)
    torch.testing.assert_close(delta.flatten(1).norm(dim=1), 0.1 * accepted.double().sqrt().float(),
                               atol=1e-4, rtol=0)


def test_orders(mnist_cnn, digits):
    x = digits[0][:2]
    diagonal = SimBA(mnist_cnn, order="diagonal", generator=torch.Generator().manual_seed(0))._ordering(x)
    bands = dct_bands(28, 28).flatten()[diagonal % 784]
    assert bool((bands.diff(dim=1) >= 0).all())  # low bands first
    assert not torch.equal(diagonal[0], diagonal[1])  # ties broken at random per image
    strided = SimBA(mnist_cnn, order="strided", initial_size=7, stride=3,
                    generator=torch.Generator().manual_seed(0))._ordering(x)
    i, j = (strided % 784) // 28, (strided % 784) % 28
    assert bool((torch.maximum(i, j)[:, :49] < 7).all())  # the 7×7 low block first
    for permutation in (diagonal, strided):
        assert torch.equal(permutation.sort(dim=1).values, torch.arange(784).expand(2, -1))


def test_stops_when_done(mnist_cnn, digits):
    """A budget of 1 query only scores the inputs: nothing changes."""
    x, y = digits[0][:4], digits[1][:4]
    attack = SimBA(mnist_cnn, max_queries=1)
    assert torch.equal(attack(x, y), x)
    assert attack.queries.tolist() == [1, 1, 1, 1]
    assert math.isfinite(float(attack.history.sum()))
