"""The training loop: learning, determinism, checkpoints, resume after SIGKILL, NaN, input checks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from freqlens.errors import CheckpointError, ModelError, TrainingError
from freqlens.models import build, load, read_checkpoint
from freqlens.training import TrainingConfigError, evaluate, train

HISTORY_KEYS = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds", "lr", "mode", "val_vii"}
FAST = {"batch_size": 32, "progress": False}


def small_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build("mlp", 1, 10, hidden=[32])


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), f"{key} differs"


def flat_tensors(obj, prefix="") -> dict[str, torch.Tensor]:
    """Every tensor inside a nested dict/list (e.g. an optimizer state), by path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return {}
    out = {}
    for key, value in items:
        out.update(flat_tensors(value, f"{prefix}/{key}"))
    return out


class NoiseMode:
    """Adds generator noise (a stand-in for noise modulation): exercises the mode's random stream."""

    name = "test-noise"

    def __init__(self):
        self.generators = []

    def transform(self, model, x, y, generator=None):
        self.generators.append(generator)
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        return (x + 0.1 * noise).clamp(0, 1)

    def describe(self):
        return {"name": self.name, "sigma": 0.1}


# ------------------------------------------------------------------------------------------- learning
@pytest.mark.parametrize("name, lr", [("mlp", 1e-3), ("lenet", 3e-3)])
def test_model_learns_the_demo_digits(name, lr, demo_train, demo_val):
    torch.manual_seed(0)
    model = build(name, 1, 10)
    history = train(model, demo_train, demo_val, epochs=2, lr=lr, **FAST)
    assert [entry["epoch"] for entry in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert history[1]["val_accuracy"] > 0.4  # chance: 0.1
    assert history[1]["train_accuracy"] > 0.3


def test_history_entries(demo_train, demo_val):
    history = train(small_mlp(), demo_train, demo_val, epochs=2, max_batches_per_epoch=3, **FAST)
    for entry in history:
        assert set(entry) == HISTORY_KEYS
        assert entry["mode"] == "standard" and entry["lr"] == 1e-3 and entry["seconds"] > 0
        assert 0 <= entry["train_accuracy"] <= 1 and 0 <= entry["val_accuracy"] <= 1
        assert entry["train_loss"] > 0 and entry["val_loss"] > 0


def test_validation_metrics_are_those_of_evaluate(demo_train, demo_val):
    model = small_mlp()
    history = train(model, demo_train, demo_val, epochs=1, max_batches_per_epoch=2, **FAST)
    metrics = evaluate(model, demo_val)
    assert history[0]["val_accuracy"] == metrics["accuracy"]
    assert history[0]["val_loss"] == pytest.approx(metrics["loss"], rel=1e-6)


def test_without_validation_set_val_metrics_are_none(demo_train, tmp_path):
    model = small_mlp()
    history = train(model, demo_train, None, epochs=2, max_batches_per_epoch=2, out_dir=tmp_path, **FAST)
    assert all(entry["val_loss"] is None and entry["val_accuracy"] is None for entry in history)
    best, last = read_checkpoint(tmp_path / "best.pt"), read_checkpoint(tmp_path / "last.pt")
    assert best["epoch"] == last["epoch"] == 2  # best = last without validation
    assert_same_state(best["model_state"], last["model_state"])


# ---------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("augment", [False, "flip+crop"])
def test_same_seed_same_weights_other_seed_other_weights(augment, demo_train, single_thread):
    def run(seed: int) -> dict:
        model = small_mlp()  # same initial weights: only the training seed varies
        train(model, demo_train, epochs=2, mode=NoiseMode(), seed=seed, augment=augment,
              max_batches_per_epoch=4, **FAST)
        return model.state_dict()

    first, again, other = run(1), run(1), run(2)
    assert_same_state(first, again)
    assert not torch.equal(first["classifier.weight"], other["classifier.weight"])


def test_mode_gets_one_generator_per_epoch(demo_train):
    mode = NoiseMode()
    train(small_mlp(), demo_train, epochs=2, mode=mode, max_batches_per_epoch=3, **FAST)
    assert len(mode.generators) == 6
    assert all(isinstance(g, torch.Generator) for g in mode.generators)
    assert len({id(g) for g in mode.generators[:3]}) == 1 and mode.generators[0] is not mode.generators[3]


def test_item_dataset_trains_like_image_dataset(demo_train, single_thread):
    items = [(demo_train.images[i].float() / 255, int(demo_train.labels[i])) for i in range(len(demo_train))]
    a, b = small_mlp(), small_mlp()
    train(a, demo_train, epochs=1, max_batches_per_epoch=4, **FAST)
    train(b, items, epochs=1, max_batches_per_epoch=4, **FAST)
    assert_same_state(a.state_dict(), b.state_dict())


class EvalAttackMode:
    """Runs the model in eval mode, back-propagates into the parameters (as an attack would) and leaves
    the model in eval mode: the loop must restore train mode and clear those gradients."""

    name = "eval-attack"

    def transform(self, model, x, y, generator=None):
        model.eval()
        x = x.clone().requires_grad_(True)
        F.cross_entropy(model(x), y).backward()
        return x.detach()


def small_bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Dropout(0.2), nn.Linear(4 * 13 * 13, 10))


def test_mode_that_runs_the_model_in_eval_mode_does_not_disturb_training(demo_train, single_thread):
    reference, attacked = small_bn_net(), small_bn_net()
    train(reference, demo_train, epochs=1, max_batches_per_epoch=4, **FAST)
    flags = []
    attacked[1].register_forward_hook(lambda module, inputs, output: flags.append(module.training))
    train(attacked, demo_train, epochs=1, mode=EvalAttackMode(), max_batches_per_epoch=4, **FAST)
    # the probe forward (eval), then per batch: the attack (eval) and the optimiser step (train)
    assert flags == [False] + [False, True] * 4
    assert_same_state(reference.state_dict(), attacked.state_dict())


# ---------------------------------------------------------------------------------------- checkpoints
def test_checkpoints_and_history_files(demo_train, demo_val, tmp_path):
    model = small_mlp()

    def wreck_after_epoch_1(entry):
        if entry["epoch"] == 1:  # zero weights: epoch 2 cannot beat epoch 1 on validation
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.zero_()

    history = train(model, demo_train, demo_val, epochs=2, on_epoch_end=wreck_after_epoch_1,
                    out_dir=tmp_path / "run", **FAST)
    run = tmp_path / "run"
    assert history[0]["val_accuracy"] > history[1]["val_accuracy"]
    assert json.loads((run / "history.json").read_text()) == history

    last = read_checkpoint(run / "last.pt")  # weights_only=True
    assert last["epoch"] == 2 and last["history"] == history
    assert_same_state(last["model_state"], model.state_dict())
    assert last["train_config"]["lr"] == 1e-3 and last["train_config"]["mode"] == "standard"
    assert last["train_config"]["optimizer"] == "adam" and last["train_config"]["batch_size"] == 32
    assert isinstance(last["rng_state"], torch.Tensor) and "state" in last["optimizer_state"]

    best = read_checkpoint(run / "best.pt")
    assert best["epoch"] == best["best_epoch"] == 1
    assert best["best_val_accuracy"] == history[0]["val_accuracy"]
    assert evaluate(load(run / "best.pt"), demo_val)["accuracy"] == history[0]["val_accuracy"]
    assert not list(run.glob("*.tmp"))


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from freqlens.data import load_dataset
    from freqlens.models import build
    from freqlens.training import train

    train_set = load_dataset("demo-mnist", "train").subset(range(0, 2000, 5))
    val_set = load_dataset("demo-mnist", "test").subset(range(200))

    class NoiseMode:
        name = "test-noise"
        def transform(self, model, x, y, generator=None):
            return (x + 0.1 * torch.randn(x.shape, generator=generator)).clamp(0, 1)
        def describe(self):
            return {"name": self.name, "sigma": 0.1}

    def kill(entry):
        if entry["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    torch.manual_seed(0)
    model = build("lenet", 1, 10)
    train(model, train_set, val_set, mode=NoiseMode(), epochs=3, batch_size=32, augment=True, seed=7,
          max_batches_per_epoch=6, out_dir=sys.argv[1], progress=False, on_epoch_end=kill)
    """
)


class ScriptNoiseMode:
    """Same as the NoiseMode of the killed script (CPU generator draws)."""

    name = "test-noise"

    def transform(self, model, x, y, generator=None):
        return (x + 0.1 * torch.randn(x.shape, generator=generator)).clamp(0, 1)

    def describe(self):
        return {"name": self.name, "sigma": 0.1}


def test_resume_after_sigkill_is_bit_identical(demo_train, demo_val, tmp_path, single_thread):
    settings = {"mode": ScriptNoiseMode(), "epochs": 3, "batch_size": 32, "augment": True, "seed": 7,
                    "max_batches_per_epoch": 6, "progress": False}
    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    killed_dir = tmp_path / "killed"
    result = subprocess.run([sys.executable, str(script), str(killed_dir)], check=False, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert read_checkpoint(killed_dir / "last.pt")["epoch"] == 1
    assert len(json.loads((killed_dir / "history.json").read_text())) == 1

    torch.manual_seed(123)  # the initial weights of a resumed run do not matter
    resumed = build("lenet", 1, 10)
    resumed_history = train(resumed, demo_train, demo_val, out_dir=killed_dir, resume=True, **settings)

    torch.manual_seed(0)
    straight = build("lenet", 1, 10)
    straight_history = train(straight, demo_train, demo_val, out_dir=tmp_path / "straight", **settings)

    assert_same_state(resumed.state_dict(), straight.state_dict())
    final_resumed = read_checkpoint(killed_dir / "last.pt")
    final_straight = read_checkpoint(tmp_path / "straight" / "last.pt")
    assert final_resumed["epoch"] == 3
    assert_same_state(final_resumed["model_state"], final_straight["model_state"])
    assert_same_state(flat_tensors(final_resumed["optimizer_state"]), flat_tensors(final_straight["optimizer_state"]))
    drop_time = [{k: v for k, v in e.items() if k != "seconds"} for e in resumed_history]
    assert drop_time == [{k: v for k, v in e.items() if k != "seconds"} for e in straight_history]
    assert final_resumed["best_epoch"] == final_straight["best_epoch"]


def test_resume_with_dropout_and_sgd_in_process(demo_train, tmp_path, single_thread):
    settings = dict(epochs=3, optimizer="sgd", lr=0.05, augment="crop", max_batches_per_epoch=4, **FAST)
    straight = small_bn_net()
    train(straight, demo_train, **settings)
    interrupted = small_bn_net()
    train(interrupted, demo_train, out_dir=tmp_path, **{**settings, "epochs": 1})
    resumed = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                            nn.Dropout(0.2), nn.Linear(4 * 13 * 13, 10))
    history = train(resumed, demo_train, out_dir=tmp_path, resume=True, **settings)
    assert [entry["epoch"] for entry in history] == [1, 2, 3]
    assert_same_state(resumed.state_dict(), straight.state_dict())  # includes BN running statistics


def test_resume_of_a_finished_run_trains_nothing(demo_train, tmp_path):
    model = small_mlp()
    history = train(model, demo_train, epochs=2, max_batches_per_epoch=2, out_dir=tmp_path, **FAST)
    stamp = (tmp_path / "last.pt").stat().st_mtime_ns
    fresh = small_mlp(seed=5)
    again = train(fresh, demo_train, epochs=2, max_batches_per_epoch=2, out_dir=tmp_path, resume=True, **FAST)
    assert again == history
    assert (tmp_path / "last.pt").stat().st_mtime_ns == stamp
    assert_same_state(fresh.state_dict(), model.state_dict())  # the saved weights are loaded


def test_resume_without_checkpoint_warns_and_starts_afresh(demo_train, tmp_path):
    with pytest.warns(RuntimeWarning, match="not found"):
        history = train(small_mlp(), demo_train, epochs=1, max_batches_per_epoch=2, out_dir=tmp_path,
                        resume=True, **FAST)
    assert len(history) == 1 and (tmp_path / "last.pt").is_file()


def test_a_fresh_run_warns_before_overwriting_checkpoints(demo_train, tmp_path):
    train(small_mlp(), demo_train, epochs=1, max_batches_per_epoch=2, out_dir=tmp_path, **FAST)
    first = read_checkpoint(tmp_path / "last.pt")["model_state"]
    with pytest.warns(RuntimeWarning, match="overwritten"):
        train(small_mlp(seed=1), demo_train, epochs=1, max_batches_per_epoch=2, out_dir=tmp_path, **FAST)
    assert not torch.equal(read_checkpoint(tmp_path / "last.pt")["model_state"]["classifier.weight"],
                           first["classifier.weight"])


def test_resume_with_another_architecture_names_both(demo_train, tmp_path):
    train(small_mlp(), demo_train, epochs=1, max_batches_per_epoch=2, out_dir=tmp_path, **FAST)
    other = build("lenet", 1, 10)
    with pytest.raises(CheckpointError) as error:
        train(other, demo_train, epochs=2, out_dir=tmp_path, resume=True, **FAST)
    assert "'mlp'" in str(error.value) and "'lenet'" in str(error.value)


def test_resume_with_other_settings_is_refused(demo_train, tmp_path):
    train(small_mlp(), demo_train, epochs=1, max_batches_per_epoch=2, out_dir=tmp_path, **FAST)
    with pytest.raises(TrainingConfigError, match="lr"):
        train(small_mlp(), demo_train, epochs=2, lr=0.1, max_batches_per_epoch=2, out_dir=tmp_path,
              resume=True, **FAST)


# ------------------------------------------------------------------------------------------------ NaN
class PoisonMode:
    """Standard training, then NaN inputs from call number ``after + 1`` on."""

    name = "poison"

    def __init__(self, after: int):
        self.after, self.calls = after, 0

    def transform(self, model, x, y, generator=None):
        self.calls += 1
        return x * float("nan") if self.calls > self.after else x


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(demo_train, demo_val, tmp_path):
    model = small_mlp()
    with pytest.raises(TrainingError, match=r"NaN at epoch 2, batch 1") as error:
        train(model, demo_train, demo_val, epochs=3, mode=PoisonMode(after=3), max_batches_per_epoch=3,
              out_dir=tmp_path, **FAST)
    assert str(tmp_path / "last.pt") in str(error.value) and "lower learning rate" in str(error.value)
    last = read_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 1 and read_checkpoint(tmp_path / "best.pt")["epoch"] == 1
    assert len(json.loads((tmp_path / "history.json").read_text())) == 1
    reloaded = load(tmp_path / "last.pt")
    assert all(torch.isfinite(p).all() for p in reloaded.parameters())


def test_diverging_learning_rate_is_a_training_error(demo_train, tmp_path):
    with pytest.raises(TrainingError, match="epoch 1.*no checkpoint was written"):
        train(small_mlp(), demo_train, epochs=1, lr=1e30, out_dir=tmp_path, **FAST)
    assert not (tmp_path / "last.pt").exists()


# --------------------------------------------------------------------------------------- input checks
def pixels(n: int, channels: int, size: int, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=generator)
    return images, torch.arange(n) % classes


@pytest.mark.parametrize(
    "make_model, data, fragment",
    [
        (lambda: build("mlp", 1, 10, image_size=28), pixels(8, 1, 32), "28×28.*32×32"),
        (lambda: build("lenet", 3, 10), pixels(8, 1, 28), "channel"),
        (lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), pixels(8, 1, 32), "1×32×32"),
        (lambda: build("lenet", 1, 5), pixels(8, 1, 28, classes=8), "labels go up to 7.*5 outputs"),
    ],
)
def test_data_that_does_not_fit_the_model_is_a_model_error(make_model, data, fragment, tmp_path):
    with pytest.raises(ModelError, match=fragment):
        train(make_model(), data, epochs=1, out_dir=tmp_path, **FAST)
    assert not (tmp_path / "last.pt").exists()


def test_validation_set_is_checked_too(demo_train):
    with pytest.raises(ModelError, match="validation"):
        train(small_mlp(), demo_train, pixels(4, 1, 32), epochs=1, **FAST)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"augment": "rotate"}, "augment"),
        ({"resume": True}, "out_dir"),
        ({"mode": "standard"}, "TrainingMode"),
        ({"max_batches_per_epoch": 0}, "max_batches_per_epoch"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, fragment, demo_train):
    with pytest.raises(TrainingConfigError, match=fragment):
        train(small_mlp(), demo_train, **{"progress": False, **kwargs})


# ------------------------------------------------------------------------------------- evaluate, misc
def test_evaluate_matches_a_direct_computation(demo_val):
    model = small_mlp()
    model.train()
    x, y = demo_val.images.float() / 255, demo_val.labels
    with torch.no_grad():
        logits = model.eval()(x)
    model.train()
    expected_loss = float(F.cross_entropy(logits, y))
    expected_accuracy = int((logits.argmax(1) == y).sum()) / len(y)
    for batch_size in (7, 512):
        metrics = evaluate(model, demo_val, batch_size=batch_size)
        assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-5)
        assert metrics["accuracy"] == expected_accuracy
    assert model.training  # flags restored


def test_progress_bar_goes_to_stderr_and_can_be_disabled(demo_train, capsys):
    train(small_mlp(), demo_train, epochs=1, max_batches_per_epoch=2, batch_size=32, progress=True)
    assert "epoch 1/1" in capsys.readouterr().err
    train(small_mlp(), demo_train, epochs=1, max_batches_per_epoch=2, batch_size=32, progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_training_leaves_the_callers_global_rng_alone(demo_train):
    model = small_bn_net()  # has dropout: uses torch's global RNG while training
    torch.manual_seed(42)
    state = torch.get_rng_state()
    train(model, demo_train, epochs=1, max_batches_per_epoch=2, **FAST)
    assert torch.equal(torch.get_rng_state(), state)
