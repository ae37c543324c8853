"""Robust accuracy and summaries against direct computations; chunking does not change results."""

from __future__ import annotations

import pytest
import torch

from freqlens.attacks import FGSM, PGD, SimBA, attack_summary, robust_accuracy, robust_correct, run_attack


def test_robust_accuracy_matches_a_direct_computation_and_is_chunk_invariant(mnist_cnn, digits):
    x, y = digits
    attack = FGSM(mnist_cnn, eps=0.1)
    with torch.no_grad():
        expected = mnist_cnn.eval()(attack(x, y)).argmax(1) == y
    for batch_size in (None, 5, 32):
        assert torch.equal(robust_correct(mnist_cnn, x, y, attack, batch_size=batch_size), expected)
        assert robust_accuracy(mnist_cnn, x, y, attack, batch_size=batch_size) == pytest.approx(
            float(expected.float().mean()))


def test_summary_fields(mnist_cnn, digits):
    x, y = digits[0][:16], digits[1][:16]
    x = torch.cat([x, 1 - x[:4]])  # inverted digits: some are misclassified before the attack
    y = torch.cat([y, y[:4]])
    attack = PGD(mnist_cnn, eps=0.1, alpha=0.03, steps=5, generator=torch.Generator().manual_seed(0))
    result = run_attack(mnist_cnn, x, y, attack, batch_size=7)
    summary = result.summary()
    with torch.no_grad():
        model = mnist_cnn.eval()
        clean = model(x).argmax(1) == y
        robust = model(result.adversarial).argmax(1) == y
    delta = (result.adversarial - x).flatten(1)
    success = clean & ~robust
    assert summary["n_images"] == 20
    assert summary["clean_accuracy"] == pytest.approx(float(clean.float().mean()))
    assert summary["robust_accuracy"] == pytest.approx(float(robust.float().mean()))
    assert summary["success_rate"] == pytest.approx(float(success.sum() / clean.sum()))
    assert summary["mean_l2"] == pytest.approx(float(delta.norm(dim=1).mean()), rel=1e-5)
    assert summary["mean_linf"] == pytest.approx(float(delta.abs().amax(dim=1).mean()), rel=1e-5)
    assert summary["mean_linf"] <= 0.1 + 1e-6
    assert "mean_queries" not in summary


def test_summary_counts_simba_queries_per_chunk(mnist_cnn, digits):
    x, y = digits[0][:10], digits[1][:10]
    attack = SimBA(mnist_cnn, eps=0.2, max_queries=30, basis="dct", order="diagonal",
                   generator=torch.Generator().manual_seed(0))
    result = run_attack(mnist_cnn, x, y, attack, batch_size=4)
    assert result.queries.shape == (10,) and bool((result.queries <= 30).all())
    summary = attack_summary(mnist_cnn, x, y, attack, batch_size=4)
    assert summary["mean_queries"] == pytest.approx(float(result.queries.float().mean()))


def test_targeted_attack_is_refused(mnist_cnn, digits):
    with pytest.raises(ValueError, match="untargeted"):
        robust_accuracy(mnist_cnn, digits[0][:2], digits[1][:2], FGSM(mnist_cnn, targeted=True))
