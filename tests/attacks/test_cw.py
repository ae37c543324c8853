"""Carlini–Wagner L2: the margin for negative logits, success with small L2 compared with PGD-L2,
targeted mode, best-example bookkeeping."""

from __future__ import annotations

import pytest
import torch

from freqlens.attacks import CW, PGD, cw_margin


def _margin_by_loop(logits: torch.Tensor, labels: torch.Tensor, kappa: float, targeted: bool) -> torch.Tensor:
    values = []
    for row, label in zip(logits.tolist(), labels.tolist()):
        own = row[label]
        others = max(v for i, v in enumerate(row) if i != label)
        values.append(max(others - own if targeted else own - others, -kappa))
    return torch.tensor(values)


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("kappa", [0.0, 0.5])
def test_margin_matches_a_loop_also_for_negative_logits(targeted, kappa):
    generator = torch.Generator().manual_seed(0)
    logits = -5 - 3 * torch.rand(50, 7, generator=generator, dtype=torch.float64)  # all negative
    labels = torch.randint(0, 7, (50,), generator=generator)
    torch.testing.assert_close(cw_margin(logits, labels, kappa, targeted),
                               _margin_by_loop(logits, labels, kappa, targeted).double())


def _success_and_l2(model, x, y, x_adv, targeted=False):
    with torch.no_grad():
        predicted = model.eval()(x_adv).argmax(1)
    success = predicted == y if targeted else predicted != y
    return success, (x_adv - x).flatten(1).norm(dim=1)


def test_cw_succeeds_with_smaller_l2_than_pgd_l2(mnist_cnn, digits):
    """CW finds near-minimal perturbations; PGD-L2 uses its whole budget ε. ε = 2 is chosen so that
    PGD-L2's success rate is comparable to CW's (within 15 points on this model), and CW's mean L2
    over its successes is then clearly smaller."""
    x, y = digits
    cw = CW(mnist_cnn, c=1.0, steps=100, lr=0.05, binary_search_steps=1)  # fixed c: comparable success rates
    cw_success, cw_l2 = _success_and_l2(mnist_cnn, x, y, cw(x, y))
    pgd = PGD(mnist_cnn, eps=2.0, alpha=0.5, steps=10, norm="2", generator=torch.Generator().manual_seed(0))
    pgd_success, pgd_l2 = _success_and_l2(mnist_cnn, x, y, pgd(x, y))
    cw_rate, pgd_rate = float(cw_success.float().mean()), float(pgd_success.float().mean())
    assert cw_rate >= 0.5
    assert pgd_rate >= cw_rate - 0.15
    assert float(cw_l2[cw_success].mean()) < float(pgd_l2[pgd_success].mean())
    assert bool((cw_l2[~cw_success] == 0).all())  # failures are returned unchanged


def test_targeted_cw_reaches_the_target(mnist_cnn, digits):
    x, y = digits
    target = (y + 3) % 10
    success, _ = _success_and_l2(mnist_cnn, x, target, CW(mnist_cnn, c=5.0, steps=100, lr=0.05, targeted=True)(x, target),
                                 targeted=True)
    assert float(success.float().mean()) >= 0.8


def test_cw_without_success_returns_the_inputs(mnist_cnn, digits):
    """With a tiny c the distance term dominates: nothing is misclassified and x comes back unchanged."""
    x, y = digits[0][:6], digits[1][:6]
    assert torch.equal(CW(mnist_cnn, c=1e-4, steps=10, lr=0.01, binary_search_steps=1)(x, y), x)


def test_cw_keeps_the_smallest_successful_example(mnist_cnn, digits):
    """More steps can only lower (or keep) the per-image L2 of the returned successful examples."""
    x, y = digits[0][:10], digits[1][:10]
    short_success, short_l2 = _success_and_l2(mnist_cnn, x, y, CW(mnist_cnn, c=2.0, steps=20, lr=0.05,
                                                                  abort_early=False, binary_search_steps=1)(x, y))
    attack = CW(mnist_cnn, c=2.0, steps=60, lr=0.05, abort_early=False, binary_search_steps=1)
    long_success, long_l2 = _success_and_l2(mnist_cnn, x, y, attack(x, y))
    both = short_success & long_success
    assert bool((long_success | ~short_success).all())
    assert bool((long_l2[both] <= short_l2[both] + 1e-5).all())
    torch.testing.assert_close(attack.best_l2[long_success], long_l2[long_success], atol=1e-5, rtol=0)


def test_binary_search_follows_carlini_wagners_schedule(monkeypatch):
    """Rounds see c = 1, 10 (no upper bound yet: ×10), then bisections of [lower, upper]; an image with
    success iff c >= 3.7: 1 ✗ → 10 ✓ → 5.5 ✓ → 3.25 ✗ → 4.375; one that always succeeds halves c."""
    seen = []

    def fake_round(self, inputs, labels, const, best, best_l2, best_c):
        seen.append(const.clone())
        found = torch.tensor([bool(const[0] >= 3.7), True])
        return found, best, best_l2, best_c

    monkeypatch.setattr(CW, "_round", fake_round)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    CW(model, c=1.0, binary_search_steps=5)(torch.rand(2, 1, 2, 2), torch.tensor([0, 1]))
    torch.testing.assert_close(torch.stack(seen)[:, 0], torch.tensor([1.0, 10.0, 5.5, 3.25, 4.375]))
    torch.testing.assert_close(torch.stack(seen)[:, 1], torch.tensor([1.0, 0.5, 0.25, 0.125, 0.0625]))


def test_search_never_loses_against_the_fixed_constant(mnist_cnn, digits):
    """The first round is the fixed-c attack and the best example is kept over rounds: every image made
    adversarial at fixed c is also made adversarial with the search, at an L2 no larger."""
    x, y = digits[0][:12], digits[1][:12]
    settings = {"c": 0.3, "steps": 30, "lr": 0.05}
    fixed = CW(mnist_cnn, binary_search_steps=1, **settings)
    fixed_success, fixed_l2 = _success_and_l2(mnist_cnn, x, y, fixed(x, y))
    search = CW(mnist_cnn, binary_search_steps=4, **settings)
    search_success, search_l2 = _success_and_l2(mnist_cnn, x, y, search(x, y))
    assert bool((search_success | ~fixed_success).all())
    assert bool((search_l2[fixed_success] <= fixed_l2[fixed_success] + 1e-5).all())
    assert bool(torch.isnan(search.best_c[~search_success]).all())
    assert bool((search.best_c[search_success] > 0).all())


def test_search_rescues_a_too_small_initial_constant(mnist_cnn, digits):
    """At c = 1e-3 the distance term wins and nothing is misclassified; the search raises c per image
    (×10 per failed round) until the attack succeeds for (nearly) every image."""
    x, y = digits[0][:12], digits[1][:12]
    settings = {"c": 1e-3, "steps": 100, "lr": 0.05}
    fixed_success, _ = _success_and_l2(mnist_cnn, x, y, CW(mnist_cnn, binary_search_steps=1, **settings)(x, y))
    search_success, _ = _success_and_l2(mnist_cnn, x, y, CW(mnist_cnn, binary_search_steps=6, **settings)(x, y))
    assert float(fixed_success.float().mean()) == 0.0
    assert float(search_success.float().mean()) >= 0.9
