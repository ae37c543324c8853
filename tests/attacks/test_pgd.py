"""PGD (L∞, L2, restarts, targeted) and LowFrequencyPGD: budgets, strength, projection, DCT band."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqlens.attacks import FGSM, PGD, LowFrequencyPGD, robust_accuracy
from freqlens.spectral import band_mask, dct2


def _norms(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1), flat.norm(dim=1)


@pytest.mark.parametrize("norm, eps, alpha", [("inf", 0.1, 0.03), ("2", 1.0, 0.4)])
@pytest.mark.parametrize("cls", [PGD, LowFrequencyPGD])
def test_perturbation_within_budget(mnist_cnn, digits, cls, norm, eps, alpha):
    x, y = digits
    x_adv = cls(mnist_cnn, eps=eps, alpha=alpha, steps=8, norm=norm, generator=torch.Generator().manual_seed(0))(x, y)
    linf, l2 = _norms(x_adv - x)
    assert float((linf if norm == "inf" else l2).max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    # the budget is used: most perturbations reach the boundary of the ball
    assert float(((linf if norm == "inf" else l2) > 0.9 * eps).float().mean()) > 0.5


def test_pgd_is_at_least_as_strong_as_fgsm(mnist_cnn, digits):
    x, y = digits
    eps = 0.1
    fgsm = robust_accuracy(mnist_cnn, x, y, FGSM(mnist_cnn, eps=eps))
    pgd = robust_accuracy(mnist_cnn, x, y, PGD(mnist_cnn, eps=eps, alpha=eps / 4, steps=10,
                                               generator=torch.Generator().manual_seed(0)))
    assert pgd <= fgsm
    assert pgd < 1.0  # and it does break the trained model


def test_pgd_without_random_start_one_step_is_fgsm(mnist_cnn, digits):
    """One L∞ step of size α = ε from δ = 0 is exactly FGSM."""
    x, y = digits[0][:8], digits[1][:8]
    pgd = PGD(mnist_cnn, eps=0.07, alpha=0.07, steps=1, random_start=False)(x, y)
    assert torch.equal(pgd, FGSM(mnist_cnn, eps=0.07)(x, y))


def test_l2_step_follows_the_normalised_gradient_of_a_linear_model():
    """Two classes, logits (w·x, 0), label 0: the gradient is ∝ −w, so from an interior x the L2
    iterate after k steps is x − min(kα, ε)·w/‖w‖."""
    torch.manual_seed(0)
    linear = nn.Linear(16, 2, bias=False)
    with torch.no_grad():
        linear.weight[1] = 0
        linear.weight[0] *= 0.01 / linear.weight[0].abs().max()
    model = nn.Sequential(nn.Flatten(), linear)
    x = 0.4 + 0.2 * torch.rand(3, 1, 4, 4)
    y = torch.zeros(3, dtype=torch.long)
    unit = (linear.weight[0] / linear.weight[0].norm()).detach().view(1, 1, 4, 4)
    x_adv = PGD(model, eps=0.05, alpha=0.02, steps=4, norm="2", random_start=False)(x, y)
    torch.testing.assert_close(x_adv, x - 0.05 * unit, atol=1e-6, rtol=0)


@pytest.mark.parametrize("norm, eps, alpha", [("inf", 0.3, 0.05), ("2", 3.0, 0.5)])
def test_targeted_pgd_reaches_the_target(mnist_cnn, digits, norm, eps, alpha):
    x, y = digits
    target = (y + 3) % 10
    x_adv = PGD(mnist_cnn, eps=eps, alpha=alpha, steps=20, norm=norm, targeted=True,
                generator=torch.Generator().manual_seed(0))(x, target)
    with torch.no_grad():
        hit = (mnist_cnn.eval()(x_adv).argmax(1) == target).float().mean()
    assert float(hit) >= 0.8


def test_restarts_never_worse_than_a_single_run(mnist_cnn, digits):
    """Per image, restarts keep a successful run when the first run (same seed) also succeeded."""
    x, y = digits
    settings = {"eps": 0.08, "alpha": 0.02, "steps": 5}
    single = PGD(mnist_cnn, **settings, generator=torch.Generator().manual_seed(1))(x, y)
    several = PGD(mnist_cnn, **settings, restarts=4, generator=torch.Generator().manual_seed(1))(x, y)
    with torch.no_grad():
        model = mnist_cnn.eval()
        fooled_single = model(single).argmax(1) != y
        fooled_several = model(several).argmax(1) != y
    assert bool((fooled_several | ~fooled_single).all())
    assert int(fooled_several.sum()) >= int(fooled_single.sum())
    assert float((several - x).abs().max()) <= 0.08 + 1e-6


@pytest.mark.parametrize("norm, eps", [("inf", 0.1), ("2", 1.5)])
@pytest.mark.parametrize("cutoff", [3, 8])
def test_low_frequency_pgd_stays_in_band(mnist_cnn, digits, norm, eps, cutoff):
    """Images mapped into [0.25, 0.75] (ε ≤ 0.25 in L∞; the L2 perturbations here stay below 0.25 per
    pixel) so that the final clip to [0, 1] is inactive: the DCT energy outside the bands < cutoff is
    ≤ 1e-6 of the total."""
    x, y = digits
    x = 0.25 + 0.5 * x
    attack = LowFrequencyPGD(mnist_cnn, eps=eps, alpha=eps / 4, steps=6, norm=norm, cutoff=cutoff,
                             generator=torch.Generator().manual_seed(0))
    delta = attack(x, y) - x
    assert float(delta.abs().max()) < 0.25  # the clip was inactive
    energy = dct2(delta.double()).pow(2)
    outside = ~band_mask(28, 28, range(cutoff))
    ratio = energy[..., outside].sum(dim=-1) / energy.flatten(1).sum(dim=-1, keepdim=True).clamp_min(1e-30)
    assert float(ratio.max()) <= 1e-6
    assert float(energy.sum()) > 0


def test_low_frequency_pgd_with_every_band_equals_pgd_l2(mnist_cnn, digits):
    """With cutoff ≥ H + W − 1 the band projection is the identity and L2 rescaling is PGD's projection."""
    x, y = digits[0][:8], digits[1][:8]
    settings = {"eps": 1.0, "alpha": 0.3, "steps": 4, "norm": "2", "random_start": False}
    low = LowFrequencyPGD(mnist_cnn, cutoff=55, **settings)(x, y)
    torch.testing.assert_close(low, PGD(mnist_cnn, **settings)(x, y), atol=1e-5, rtol=0)
