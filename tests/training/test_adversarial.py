"""Adversarial training modes: PGD-AT (Madry) through freqlens.attacks and fast FGSM-AT (Wong et al.)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqlens.attacks import FGSM, PGD
from freqlens.errors import FreqlensError
from freqlens.training import Adversarial, FastFGSM, describe_mode, train

EPS = 8 / 255


def _bn_net(seed: int = 0) -> nn.Module:
    """A tiny CNN with BatchNorm (train/eval flags matter) for 1×28×28 inputs."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 13 * 13, 10))


class Recording:
    """Wraps a mode; records each clean batch and the batch the mode returns."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.clean, self.returned = inner, inner.name, [], []

    def transform(self, model, x, y, generator=None):
        out = self.inner.transform(model, x, y, generator=generator)
        self.clean.append(x.clone())
        self.returned.append(out.detach().clone())
        return out


class Replay:
    """Returns recorded batches, in order (standard training on a fixed sequence of batches)."""

    name = "replay"

    def __init__(self, batches) -> None:
        self.batches = list(batches)

    def transform(self, model, x, y, generator=None):
        return self.batches.pop(0)


def _record_forwards(model: nn.Module):
    """Forward pre-hook: ``(input, model.training, every BatchNorm's training flag)`` of each call."""
    calls = []
    batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]

    def hook(module, args):
        calls.append((args[0].detach().clone(), module.training, [bn.training for bn in batchnorms]))

    return calls, model.register_forward_pre_hook(hook)


def _run(mode, data, tmp_path, name, model=None):
    model = _bn_net() if model is None else model
    history = train(model, data, None, mode=mode, epochs=1, batch_size=16, out_dir=tmp_path / name, seed=5,
                    progress=False, max_batches_per_epoch=3)
    return model, history


@pytest.mark.parametrize("kind", ["pgd", "pgd-l2", "fgsm", "fast"])
def test_optimiser_sees_adversarial_batches_in_the_ball(kind, demo_train, tmp_path):
    data = demo_train.subset(range(64))
    model = _bn_net()
    eps = {"pgd-l2": 0.5}.get(kind, EPS)
    attack = {"pgd": lambda: Adversarial(PGD(model, eps=eps, alpha=2 / 255, steps=3)),
              "pgd-l2": lambda: Adversarial(PGD(model, eps=eps, alpha=0.2, steps=3, norm="2")),
              "fgsm": lambda: Adversarial(FGSM(model, eps=eps)),
              "fast": lambda: Adversarial.fast(eps=eps, alpha=10 / 255)}[kind]()
    mode = Recording(attack)
    calls, handle = _record_forwards(model)
    _, history = _run(mode, data, tmp_path, kind, model)
    handle.remove()
    assert history[-1]["mode"] == "adversarial" and len(mode.clean) == 3
    training_inputs = [x for x, training, _ in calls if training]
    assert all(all(flags) for _, training, flags in calls if training)  # BatchNorm in train mode for the step
    assert not any(any(flags) for _, training, flags in calls if not training)  # attack forwards in eval
    assert len(training_inputs) == 3  # one train-mode forward per step, on exactly the returned batch
    for seen, clean, adversarial in zip(training_inputs, mode.clean, mode.returned, strict=True):
        assert torch.equal(seen, adversarial)
        assert float(seen.min()) >= 0.0 and float(seen.max()) <= 1.0
        delta = (seen - clean).flatten(1)
        size = delta.abs().amax(1) if kind != "pgd-l2" else delta.norm(dim=1)
        assert float(size.max()) <= eps * (1 + 1e-5) + 1e-6
        assert float(size.max()) > 0.5 * eps  # the attack did perturb the batch


@pytest.mark.parametrize("fast", [False, True])
def test_step_uses_only_the_adversarial_batch(fast, demo_train, tmp_path):
    # Replaying the recorded adversarial batches as plain training gives bit-identical weights and
    # BatchNorm statistics: the attack left no parameter gradients and no BatchNorm updates behind.
    data = demo_train.subset(range(64))
    model = _bn_net()
    mode = Recording(Adversarial.fast(EPS, 10 / 255) if fast else Adversarial(PGD(model, eps=EPS, steps=2)))
    _run(mode, data, tmp_path, "adv", model)
    replayed, _ = _run(Replay(mode.returned), data, tmp_path, "replay")
    for (name, a), (_, b) in zip(model.state_dict().items(), replayed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    clean, _ = _run(Replay(mode.clean), data, tmp_path, "clean")
    assert not torch.equal(clean[0].weight, model[0].weight)  # and the adversarial batches mattered


def test_fast_fgsm_closed_form_on_a_linear_model():
    # two classes, logits (0, w·x): for label 0 the loss grows with w·x, so ∇ₓL ∝ +w and the step is α·sign(w)
    torch.manual_seed(0)
    w = torch.randn(1, 2, 5, 5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(50, 1, bias=False))
    model[0 + 1].weight.data = w.flatten().unsqueeze(0)

    class TwoClass(nn.Module):
        def forward(self, x):
            return torch.cat([torch.zeros(x.shape[0], 1), model(x)], dim=1)

    x = torch.rand(4, 2, 5, 5, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(4, dtype=torch.long)
    eps, alpha = 0.1, 0.125
    got = FastFGSM(eps, alpha).perturb(TwoClass(), x, y, generator=torch.Generator().manual_seed(2))
    start = ((2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) - 1) * eps)
    start = torch.minimum(torch.maximum(start, -x), 1 - x)
    expected = (x + (start + alpha * torch.sign(w)).clamp(-eps, eps)).clamp(0, 1)
    torch.testing.assert_close(got, expected)


def test_fast_fgsm_keeps_model_state_and_grads(demo_train):
    model = _bn_net().train()
    x, y = demo_train.float_images(range(16)), torch.as_tensor(demo_train.labels[:16]).long()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(3)
    out = Adversarial.fast(EPS).transform(model, x, y, gen)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN stats untouched
    assert float((out - x).abs().max()) <= EPS + 1e-6 and 0 <= float(out.min()) and float(out.max()) <= 1
    direct = FastFGSM(EPS).perturb(model, x, y, torch.Generator().manual_seed(3))  # without the mode's wrapper
    assert torch.equal(direct, out) and model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    again = Adversarial.fast(EPS).transform(model, x, y, torch.Generator().manual_seed(3))
    other = Adversarial.fast(EPS).transform(model, x, y, torch.Generator().manual_seed(4))
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_pgd_random_start_draws_from_the_loop_generator(demo_train):
    model = _bn_net()
    attack = PGD(model, eps=EPS, alpha=2 / 255, steps=1)
    mode = Adversarial(attack)
    x, y = demo_train.float_images(range(8)), torch.as_tensor(demo_train.labels[:8]).long()
    first = mode.transform(model, x, y, torch.Generator().manual_seed(9))
    assert attack.generator is None  # lent for the call only
    torch.manual_seed(123)  # the global RNG must not matter
    assert torch.equal(first, mode.transform(model, x, y, torch.Generator().manual_seed(9)))
    assert not torch.equal(first, mode.transform(model, x, y, torch.Generator().manual_seed(10)))


def test_callable_attack_taking_a_generator_gets_the_loop_generator():
    received = []

    model = _bn_net().train()

    def attack(x, y, generator=None):
        received.append((generator, model.training, model[1].training))
        return x.flip(0)

    gen = torch.Generator()
    x = torch.rand(2, 1, 28, 28)
    out = Adversarial(attack).transform(model, x, torch.zeros(2, dtype=torch.long), gen)
    assert received == [(gen, False, False)] and torch.equal(out, x.flip(0))  # eval mode during the attack
    assert model.training and model[1].training  # restored after


def test_describe_records_the_attack():
    model = _bn_net()
    description = describe_mode(Adversarial(PGD(model, eps=EPS, alpha=1 / 255, steps=4, norm="inf")))
    assert description["name"] == "adversarial" and description["attack"] == "PGD"
    assert (description["eps"], description["alpha"], description["steps"], description["norm"]) == (
        EPS, 1 / 255, 4, "inf")
    fast = describe_mode(Adversarial.fast(0.1, 0.125))
    assert fast == {"name": "adversarial", "attack": "FastFGSM", "eps": 0.1, "alpha": 0.125}


def test_bad_settings_are_user_errors(demo_train):
    with pytest.raises(FreqlensError, match="eps"):
        FastFGSM(eps=0)
    with pytest.raises(FreqlensError, match="alpha"):
        FastFGSM(alpha=float("nan"))
    with pytest.raises(FreqlensError, match="callable"):
        Adversarial(3)
    mode = Adversarial(PGD(_bn_net(), eps=EPS, steps=1))  # bound to another model than the trained one
    with pytest.raises(FreqlensError, match="another model"):
        train(_bn_net(), demo_train.subset(range(16)), None, mode=mode, epochs=1, batch_size=16, progress=False)


def test_pgd_training_is_bounded_seeded_and_in_the_cache_key():
    from freqlens.training import PGDTraining, describe_mode

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 3))
    x = torch.rand(4, 2, 6, 6, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 2, 0])
    mode = Adversarial.pgd(eps=0.05, alpha=0.02, steps=3)
    one = mode.transform(model, x, y, generator=torch.Generator().manual_seed(3))
    two = mode.transform(model, x, y, generator=torch.Generator().manual_seed(3))
    assert torch.equal(one, two)
    assert (one - x).abs().max() <= 0.05 + 1e-6 and one.min() >= 0 and one.max() <= 1
    assert not torch.equal(one, x)
    loss = torch.nn.functional.cross_entropy
    assert loss(model(one), y) > loss(model(x), y)  # PGD ascends the loss
    described = describe_mode(mode)
    assert (described["name"], described["eps"], described["alpha"], described["steps"]) == (
        "adversarial", 0.05, 0.02, 3)
    assert described != describe_mode(Adversarial(PGDTraining(eps=0.1, alpha=0.02, steps=3)))
    with pytest.raises(FreqlensError, match="steps"):
        PGDTraining(steps=0)
