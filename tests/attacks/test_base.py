"""Properties shared by every attack: range, shape, eval mode restored, no parameter gradients,
reproducibility, batch invariance, device/dtype, input validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from .conftest import ATTACK_NAMES, make_attack

RANDOM = {"pgd", "pgd-l2", "simba", "simba-dct", "lfpgd"}


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_output_in_range_flags_restored_and_no_parameter_grad(mnist_cnn, digits, name):
    x, y = digits[0][:8], digits[1][:8]
    mnist_cnn.train()
    list(mnist_cnn.modules())[1].eval()  # a mixed state, restored exactly
    flags = {module_name: module.training for module_name, module in mnist_cnn.named_modules()}
    for parameter in mnist_cnn.parameters():
        parameter.grad = None
    x_adv = make_attack(name, mnist_cnn, torch.Generator().manual_seed(0))(x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert not x_adv.requires_grad
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert {module_name: module.training for module_name, module in mnist_cnn.named_modules()} == flags
    assert all(parameter.grad is None for parameter in mnist_cnn.parameters())
    assert not torch.equal(x_adv, x)  # the attack did something on a trained model


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_same_generator_same_result(mnist_cnn, digits, name):
    x, y = digits[0][:6], digits[1][:6]
    first = make_attack(name, mnist_cnn, torch.Generator().manual_seed(3))(x, y)
    second = make_attack(name, mnist_cnn, torch.Generator().manual_seed(3))(x, y)
    other = make_attack(name, mnist_cnn, torch.Generator().manual_seed(4))(x, y)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "pgd-l2", "cw", "lfpgd"])
def test_batch_invariance(mnist_cnn, digits, name):
    """Without random draws that depend on the batch, attacking images together or one half at a time
    gives the same examples (per-image losses; no random start; CW's early abort is switched off since
    it looks at the whole batch's loss). SimBA is left out: its random order depends on the batch."""
    x, y = digits[0][:8], digits[1][:8]
    overrides = {"random_start": False} if name in {"pgd", "pgd-l2", "lfpgd"} else {}
    if name == "cw":
        overrides = {"abort_early": False}
    whole = make_attack(name, mnist_cnn, **overrides)(x, y)
    halves = torch.cat([make_attack(name, mnist_cnn, **overrides)(x[:3], y[:3]),
                        make_attack(name, mnist_cnn, **overrides)(x[3:], y[3:])])
    torch.testing.assert_close(whole, halves, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_bad_inputs_raise(mnist_cnn, digits, name):
    attack = make_attack(name, mnist_cnn)
    x, y = digits[0][:2], digits[1][:2]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attack(x * 2 + 0.5, y)
    with pytest.raises(ValueError, match="NaN"):
        attack(torch.full_like(x, float("nan")), y)
    with pytest.raises(ValueError, match="B×C×H×W"):
        attack(x[0], y)
    with pytest.raises(ValueError, match="integer"):
        attack(x, y.float())
    with pytest.raises(ValueError, match="shape"):
        attack(x, y[:1])
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        attack(x, torch.tensor([0, 10]))
    with pytest.raises(TypeError):
        attack(x, [0, 1])


def test_float64_inputs_keep_their_dtype():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double()
    x = torch.rand(4, 3, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0])
    for name in ATTACK_NAMES:
        x_adv = make_attack(name, model, torch.Generator().manual_seed(0))(x, y)
        assert x_adv.dtype == torch.float64 and x_adv.shape == x.shape


def test_bad_settings_raise(mnist_cnn):
    from freqlens.attacks import CW, PGD, SimBA

    with pytest.raises(ValueError, match="norm"):
        PGD(mnist_cnn, norm="1")
    with pytest.raises(ValueError, match="steps"):
        PGD(mnist_cnn, steps=-1)
    with pytest.raises(ValueError, match="eps"):
        PGD(mnist_cnn, eps=-0.1)
    with pytest.raises(ValueError, match="basis"):
        SimBA(mnist_cnn, basis="fourier")
    with pytest.raises(ValueError, match="order"):
        SimBA(mnist_cnn, order="zigzag")
    with pytest.raises(ValueError, match="c must"):
        CW(mnist_cnn, c=0)
    with pytest.raises(TypeError, match="nn.Module"):
        PGD(lambda x: x)
