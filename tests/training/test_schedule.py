"""Learning-rate schedules and the channels-last option of the training loop."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from freqlens.training import TrainingConfigError, train
from freqlens.training.loop import epoch_lr

FAST = {"batch_size": 32, "progress": False, "max_batches_per_epoch": 3}


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 13 * 13, 10))


def test_cosine_closed_form() -> None:
    assert epoch_lr(0.1, "constant", 7, 10) == 0.1
    assert epoch_lr(0.1, "cosine", 1, 10) == pytest.approx(0.1)
    assert epoch_lr(0.1, "cosine", 6, 10) == pytest.approx(0.05)  # half-way: cos(π/2) = 0
    values = [epoch_lr(0.1, "cosine", epoch, 10) for epoch in range(1, 11)]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert values[-1] == pytest.approx(0.1 * (1 + math.cos(math.pi * 0.9)) / 2)


def test_history_records_the_scheduled_rate(demo_train) -> None:
    history = train(small_cnn(), demo_train, epochs=4, lr=0.02, optimizer="sgd", lr_schedule="cosine", **FAST)
    assert [entry["lr"] for entry in history] == pytest.approx([epoch_lr(0.02, "cosine", e, 4) for e in range(1, 5)])


def test_cosine_resume_is_bit_identical(demo_train, tmp_path) -> None:
    settings = dict(epochs=3, lr=0.05, optimizer="sgd", weight_decay=5e-4, lr_schedule="cosine", **FAST)
    straight = small_cnn()
    train(straight, demo_train, **settings)
    interrupted = small_cnn()
    train(interrupted, demo_train, out_dir=tmp_path, **{**settings, "epochs": 1, "lr_schedule": "cosine"})
    # a cosine run of 1 epoch has another schedule than one of 3 epochs: resuming it is refused...
    with pytest.raises(TrainingConfigError, match="schedule_epochs"):
        train(small_cnn(), demo_train, out_dir=tmp_path, resume=True, **settings)


def test_resume_mid_schedule_equals_the_straight_run(demo_train, tmp_path) -> None:
    settings = dict(epochs=3, lr=0.05, optimizer="sgd", lr_schedule="cosine", **FAST)
    straight = small_cnn()
    train(straight, demo_train, **settings)
    seen: list[int] = []

    class Stop(Exception):
        pass

    def stop_after_first(entry: dict) -> None:
        seen.append(entry["epoch"])
        raise Stop

    with pytest.raises(Stop):
        train(small_cnn(), demo_train, out_dir=tmp_path, on_epoch_end=stop_after_first, **settings)
    resumed = small_cnn(seed=3)
    history = train(resumed, demo_train, out_dir=tmp_path, resume=True, **settings)
    assert seen == [1] and [entry["epoch"] for entry in history] == [1, 2, 3]
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_unknown_schedule_is_a_config_error(demo_train) -> None:
    with pytest.raises(TrainingConfigError, match="lr_schedule"):
        train(small_cnn(), demo_train, epochs=1, lr_schedule="step", **FAST)


def test_channels_last_trains_to_the_same_weights_up_to_rounding(demo_train) -> None:
    plain, last = small_cnn(), small_cnn()  # SGD: Adam's m/√v would blow rounding up for near-zero gradients
    train(plain, demo_train, epochs=1, lr=0.01, optimizer="sgd", **FAST)
    train(last, demo_train, epochs=1, lr=0.01, optimizer="sgd", channels_last=True, **FAST)
    assert last[0].weight.is_contiguous(memory_format=torch.channels_last)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(last.state_dict()[key], value, rtol=1e-4, atol=1e-5)
