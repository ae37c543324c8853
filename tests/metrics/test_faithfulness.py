"""Deletion / Insertion / MuFidelity / global score (freqlens.metrics.faithfulness)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage, stats
from torch import nn

from freqlens.metrics import deletion, global_score, insertion, mufidelity
from freqlens.metrics.faithfulness import row_correlation as _row_correlation
from freqlens.utils.perturb import gaussian_blur as _gaussian_blur

METRICS = {"deletion": deletion, "insertion": insertion}


# ----------------------------------------------------------------------------------------------- models
def linear_model(weight: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Module:
    """logits = weight @ flatten(x) + bias, with ``weight`` of shape [classes, C, H, W]."""
    classes = weight.shape[0]
    layer = nn.Linear(weight[0].numel(), classes, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight.reshape(classes, -1))
        layer.bias.copy_(torch.zeros(classes, dtype=weight.dtype) if bias is None else bias)
    return nn.Sequential(nn.Flatten(), layer)


class ConstantModel(nn.Module):
    """Logits that do not depend on the input."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1) + 0.0 * x.flatten(1).sum(1, keepdim=True)


def small_cnn(channels: int = 3, classes: int = 5) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(8 * 16, classes),
    )


def count_images(model: nn.Module) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    sizes: list[int] = []
    handle = model.register_forward_hook(lambda module, args, out: sizes.append(args[0].shape[0]))
    return sizes, handle


# ----------------------------------------------------------------------------------------------- reference
def reference_curve(model, inputs, target, maps, steps, baseline, mode, score):
    """Loop implementation from the definition: numpy ranking, one perturbed image at a time."""
    x = inputs.numpy()
    base = np.broadcast_to(baseline.numpy(), x.shape)
    ranking = maps.numpy().sum(axis=1).reshape(len(x), -1)  # channel sum
    curves = np.zeros((len(x), steps + 1))
    h, w = x.shape[-2:]
    for i in range(len(x)):
        order = np.argsort(-ranking[i], kind="stable")
        for k in range(steps + 1):
            n = int(np.floor(k * h * w / steps + 0.5))
            chosen = np.zeros(h * w, dtype=bool)
            chosen[order[:n]] = True
            chosen = chosen.reshape(1, h, w)
            if mode == "deletion":
                img = np.where(chosen, base[i], x[i])
            else:
                img = np.where(chosen, x[i], base[i])
            with torch.no_grad():
                logits = model(torch.from_numpy(np.ascontiguousarray(img))[None])[0]
            value = logits.softmax(0) if score == "prob" else logits
            curves[i, k] = float(value[target[i]])
    auc = np.array([np.trapezoid(c, np.linspace(0, 1, steps + 1)) for c in curves])
    return auc, curves


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
@pytest.mark.parametrize("score", ["prob", "logit"])
@pytest.mark.parametrize("steps", [1, 7])
def test_matches_reference_loop(mode, score, steps):
    torch.manual_seed(3)
    inputs = torch.rand(3, 2, 5, 6, dtype=torch.float64)
    model = linear_model(torch.randn(4, 2, 5, 6, dtype=torch.float64))
    target = torch.tensor([0, 3, 1])
    maps = torch.randint(-2, 3, (3, 2, 5, 6)).double()  # many ties: exercises the stable order
    baseline = torch.rand(2, 1, 1, dtype=torch.float64)  # per-channel tensor baseline
    auc, curves = METRICS[mode](model, inputs, target, maps, steps=steps, baseline=baseline, score=score,
                                return_curves=True)
    ref_auc, ref_curves = reference_curve(model, inputs, target, maps, steps, baseline, mode, score)
    assert curves.shape == (3, steps + 1)
    np.testing.assert_allclose(curves.numpy(), ref_curves, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(auc.numpy(), ref_auc, rtol=1e-10, atol=1e-12)


def oracle_problem(channels=3, size=12, batch=4):
    """Target logit (class 0) = sum of the inputs over a fixed pixel set (all channels)."""
    torch.manual_seed(5)
    pixel_set = torch.rand(size, size) < 0.25
    weight = torch.zeros(2, channels, size, size)
    weight[0, :, pixel_set] = 1.0
    model = linear_model(weight)
    inputs = 0.2 + 0.8 * torch.rand(batch, channels, size, size)
    target = torch.zeros(batch, dtype=torch.long)
    oracle = pixel_set.float().expand(batch, 1, size, size).clone()
    return model, inputs, target, oracle


def test_oracle_beats_random_and_inverse():
    model, inputs, target, oracle = oracle_problem()
    random_map = torch.rand_like(oracle)
    kwargs = {"steps": 16, "score": "logit"}
    d = {name: deletion(model, inputs, target, m, **kwargs) for name, m in
         [("oracle", oracle), ("random", random_map), ("inverse", -oracle)]}
    i = {name: insertion(model, inputs, target, m, **kwargs) for name, m in
         [("oracle", oracle), ("random", random_map), ("inverse", -oracle)]}
    assert (d["oracle"] < d["random"]).all() and (d["oracle"] < d["inverse"]).all()
    assert (i["oracle"] > i["random"]).all() and (i["oracle"] > i["inverse"]).all()
    assert (d["random"] < d["inverse"]).all() and (i["random"] > i["inverse"]).all()


def test_curve_endpoints_and_trapezoid():
    model, inputs, target, oracle = oracle_problem()
    steps = 10
    auc, curves = deletion(model, inputs, target, oracle, steps=steps, score="logit", return_curves=True)
    full = inputs[:, :, oracle[0, 0].bool()].sum(dim=(1, 2))  # clean target logit
    torch.testing.assert_close(curves[:, 0], full)
    torch.testing.assert_close(curves[:, -1], torch.zeros(len(inputs)))  # all pixels at baseline 0
    torch.testing.assert_close(auc, torch.from_numpy(np.trapezoid(curves.numpy(), dx=1 / steps, axis=1)))
    # Insertion is deletion's mirror: starts at the baseline and ends at the clean image.
    _, ins_curves = insertion(model, inputs, target, oracle, steps=steps, score="logit", return_curves=True)
    torch.testing.assert_close(ins_curves[:, 0], torch.zeros(len(inputs)))
    torch.testing.assert_close(ins_curves[:, -1], full)
    # For a linear model, deleting and inserting the same top set add up to the clean logit.
    torch.testing.assert_close(curves + ins_curves, full[:, None].expand_as(curves))


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
@pytest.mark.parametrize("score", ["prob", "logit"])
def test_constant_score_curve_auc_equals_constant(mode, score):
    logits = torch.tensor([0.3, -1.2, 2.0])
    model = ConstantModel(logits)
    inputs = torch.rand(3, 1, 8, 8)
    target = torch.tensor([0, 1, 2])
    auc = METRICS[mode](model, inputs, target, torch.rand(3, 1, 8, 8), steps=9, score=score)
    expected = logits.softmax(0)[target] if score == "prob" else logits[target]
    torch.testing.assert_close(auc, expected)


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
@pytest.mark.parametrize("batch_size", [1, 4, None])
def test_forward_pass_count_and_chunk_size(mode, batch_size):
    model = small_cnn()
    inputs, steps = torch.rand(5, 3, 8, 8), 6
    sizes, handle = count_images(model)
    try:
        METRICS[mode](model, inputs, torch.zeros(5, dtype=torch.long), torch.rand(5, 3, 8, 8), steps=steps,
                      batch_size=batch_size)
        assert sum(sizes) == 5 * (steps + 1)
        assert max(sizes) <= (batch_size or 5)
        sizes.clear()  # target=None adds one pass over the clean images
        METRICS[mode](model, inputs, None, torch.rand(5, 3, 8, 8), steps=steps, batch_size=batch_size)
        assert sum(sizes) == 5 * (steps + 2)
    finally:
        handle.remove()


def test_results_independent_of_batch_size():
    model = small_cnn()
    torch.manual_seed(0)
    inputs = torch.rand(5, 3, 10, 10)
    maps = torch.randn(5, 3, 10, 10)
    target = torch.tensor([0, 1, 2, 3, 4])
    results = []
    for batch_size in (1, 5, None, 3):
        results.append((
            deletion(model, inputs, target, maps, steps=8, batch_size=batch_size, baseline="blur"),
            insertion(model, inputs, target, maps, steps=8, batch_size=batch_size),
            mufidelity(model, inputs, target, maps, grid=4, samples=16, batch_size=batch_size,
                       generator=torch.Generator().manual_seed(7)),
        ))
    for other in results[1:]:
        for ref, value in zip(results[0], other):
            torch.testing.assert_close(value, ref, rtol=0, atol=1e-6)


def test_eval_mode_during_metric_and_restored():
    model = small_cnn()
    model.train()
    seen = []
    handle = model.register_forward_hook(lambda module, args, out: seen.append(module.training))
    try:
        inputs, maps = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
        first = deletion(model, inputs, None, maps, steps=4)
        second = deletion(model, inputs, None, maps, steps=4)  # dropout off: deterministic
        mufidelity(model, inputs, None, maps, grid=3, samples=4)
    finally:
        handle.remove()
    assert seen and not any(seen)
    assert all(module.training for module in model.modules())
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert all(p.grad is None for p in model.parameters())


def test_reductions_and_map_shapes():
    model, inputs, target, oracle = oracle_problem(channels=3)
    per_channel = oracle.expand(-1, 3, -1, -1) / 3.0
    kwargs = {"steps": 8, "score": "logit"}
    ref = deletion(model, inputs, target, oracle, **kwargs)
    torch.testing.assert_close(deletion(model, inputs, target, oracle[:, 0], **kwargs), ref)  # B×H×W
    torch.testing.assert_close(deletion(model, inputs, target, per_channel, **kwargs), ref)  # B×C×H×W
    # abs reductions turn the inverse oracle into the oracle.
    for how in ("abs_sum", "abs_mean", "max_abs"):
        torch.testing.assert_close(deletion(model, inputs, target, -oracle, reduce=how, **kwargs), ref)
    assert (deletion(model, inputs, target, -oracle, reduce="mean", **kwargs) > ref).all()


def test_blur_baseline_matches_scipy():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 20, 17, dtype=torch.float64)
    sigma = 1.7
    ours = _gaussian_blur(images, sigma).numpy()
    ref = ndimage.gaussian_filter(images.numpy(), sigma=(0, 0, sigma, sigma), mode="mirror", truncate=4.0)
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_blur_baseline_used_by_insertion():
    """Insertion from the blur baseline starts at the blurred image's score."""
    model = small_cnn()
    inputs = torch.rand(3, 3, 16, 16)
    target = torch.tensor([0, 1, 2])
    _, curves = insertion(model, inputs, target, torch.rand(3, 3, 16, 16), steps=4, baseline="blur",
                          blur_sigma=2.0, return_curves=True)
    with torch.no_grad():
        model.eval()
        blurred = model(_gaussian_blur(inputs, 2.0)).softmax(1)[torch.arange(3), target]
        clean = model(inputs).softmax(1)[torch.arange(3), target]
    torch.testing.assert_close(curves[:, 0], blurred)
    torch.testing.assert_close(curves[:, -1], clean)


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_bad_inputs(mode):
    metric = METRICS[mode]
    model = small_cnn()
    inputs, maps = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="do not match"):
        metric(model, inputs, None, torch.rand(2, 3, 8, 7))
    with pytest.raises(ValueError, match="do not match"):
        metric(model, inputs, None, torch.rand(3, 3, 8, 8))
    with pytest.raises(ValueError, match="do not match"):
        metric(model, inputs, None, torch.rand(2, 2, 8, 8))
    nan_maps = maps.clone()
    nan_maps[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        metric(model, inputs, None, nan_maps)
    with pytest.raises(ValueError, match="steps"):
        metric(model, inputs, None, maps, steps=0)
    with pytest.raises(ValueError, match="unknown score"):
        metric(model, inputs, None, maps, score="probability")
    with pytest.raises(ValueError, match="unknown baseline"):
        metric(model, inputs, None, maps, baseline="noise")
    with pytest.raises(ValueError, match="broadcast"):
        metric(model, inputs, None, maps, baseline=torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="channel reduction"):
        metric(model, inputs, None, maps, reduce="median")
    with pytest.raises(ValueError, match="batch_size"):
        metric(model, inputs, None, maps, batch_size=0)
    with pytest.raises(ValueError, match="out of range"):
        metric(model, inputs, torch.tensor([0, 9]), maps)
    with pytest.raises(ValueError, match="B×C×H×W"):
        metric(model, inputs[0], None, maps)
    bad = inputs.clone()
    bad[1, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        metric(model, bad, None, maps)


# ----------------------------------------------------------------------------------------------- MuFidelity
def linear_problem(batch=6, channels=2, size=12, dtype=torch.float32):
    torch.manual_seed(11)
    weight = torch.randn(3, channels, size, size, dtype=dtype)
    inputs = torch.rand(batch, channels, size, size, dtype=dtype)
    target = torch.randint(0, 3, (batch,))
    return weight, inputs, target


def test_mufidelity_grad_times_input_is_one_on_linear_model():
    weight, inputs, target = linear_problem()
    model = linear_model(weight)
    grad_x_input = inputs * weight[target]
    fid = mufidelity(model, inputs, target, grad_x_input, grid=4, samples=64,
                     generator=torch.Generator().manual_seed(0))
    assert fid.shape == (len(inputs),)
    torch.testing.assert_close(fid, torch.ones(len(inputs)), rtol=0, atol=1e-3)
    random_maps = torch.randn_like(inputs)
    fid_random = mufidelity(model, inputs, target, random_maps, grid=4, samples=64,
                            generator=torch.Generator().manual_seed(0))
    assert float(fid_random.abs().mean()) < 0.2


def test_mufidelity_matches_reference():
    """Independent loop implementation with the masks documented as rand(B, samples, grid, grid) < subset."""
    torch.manual_seed(2)
    model = small_cnn(channels=1, classes=3)
    inputs = torch.rand(2, 1, 10, 10)
    target = torch.tensor([2, 0])
    maps = torch.randn(2, 1, 10, 10)
    grid, samples, subset = 3, 12, 0.3
    fid = mufidelity(model, inputs, target, maps, grid=grid, samples=samples, subset=subset, baseline=0.5,
                     score="prob", generator=torch.Generator().manual_seed(4), batch_size=5)
    removed = torch.rand((2, samples, grid, grid), generator=torch.Generator().manual_seed(4)) < subset
    pixel_masks = F.interpolate(removed.float(), size=(10, 10), mode="nearest").bool()
    model.eval()
    expected = []
    with torch.no_grad():
        for i in range(2):
            clean = model(inputs[i : i + 1]).softmax(1)[0, target[i]]
            drops, masses = [], []
            for s in range(samples):
                masked = torch.where(pixel_masks[i, s], torch.tensor(0.5), inputs[i])
                drops.append(float(clean - model(masked[None]).softmax(1)[0, target[i]]))
                masses.append(float(maps[i, 0][pixel_masks[i, s]].sum()))
            expected.append(stats.pearsonr(masses, drops)[0])
    np.testing.assert_allclose(fid.numpy(), expected, atol=1e-5)


def test_mufidelity_spearman_on_monotone_model():
    """Target logit = exp(w·x / s): the drop is a monotone (non-linear) function of the removed mass."""
    weight, inputs, target = linear_problem(batch=4, dtype=torch.float64)
    weight = weight.abs()
    target = torch.zeros(4, dtype=torch.long)
    linear = linear_model(weight)
    with torch.no_grad():
        scale = float(linear(inputs)[:, 0].max()) / 3.0

    class ExpModel(nn.Module):
        def forward(self, x):
            return torch.exp(linear(x) / scale)

    model = ExpModel()
    maps = inputs * weight[target]
    kwargs = {"grid": 4, "samples": 64, "subset": 0.5}
    spearman = mufidelity(model, inputs, target, maps, corr="spearman",
                          generator=torch.Generator().manual_seed(1), **kwargs)
    pearson = mufidelity(model, inputs, target, maps, corr="pearson",
                         generator=torch.Generator().manual_seed(1), **kwargs)
    torch.testing.assert_close(spearman, torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-9)
    assert (pearson < 1 - 1e-3).all()


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_row_correlation_matches_scipy(method):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, size=(6, 30)).astype(float)  # ties
    b = a * 0.5 + rng.integers(0, 4, size=(6, 30))
    ours = _row_correlation(torch.from_numpy(a), torch.from_numpy(b), method).numpy()
    fn = stats.pearsonr if method == "pearson" else stats.spearmanr
    ref = [fn(a[i], b[i])[0] for i in range(6)]
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_mufidelity_constant_cases_give_zero_with_warning():
    model = ConstantModel(torch.tensor([1.0, 2.0]))
    inputs = torch.rand(2, 1, 6, 6)
    with pytest.warns(RuntimeWarning, match="constant"):
        fid = mufidelity(model, inputs, None, torch.rand(2, 1, 6, 6), grid=3, samples=8)
    torch.testing.assert_close(fid, torch.zeros(2))
    weight, inputs, target = linear_problem(batch=2)
    with pytest.warns(RuntimeWarning, match="constant"):
        fid = mufidelity(linear_model(weight), inputs, target, torch.zeros_like(inputs), grid=3, samples=8)
    torch.testing.assert_close(fid, torch.zeros(2))


def test_mufidelity_generator_reproducible_and_forward_count():
    model = small_cnn()
    inputs, maps = torch.rand(3, 3, 8, 8), torch.randn(3, 3, 8, 8)
    target = torch.tensor([0, 1, 2])
    sizes, handle = count_images(model)
    try:
        a = mufidelity(model, inputs, target, maps, grid=3, samples=10, batch_size=4,
                       generator=torch.Generator().manual_seed(3))
    finally:
        handle.remove()
    assert sum(sizes) == 3 * (10 + 1) and max(sizes) <= 4
    b = mufidelity(model, inputs, target, maps, grid=3, samples=10, generator=torch.Generator().manual_seed(3))
    c = mufidelity(model, inputs, target, maps, grid=3, samples=10, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not torch.allclose(a, c)
    assert ((a >= -1) & (a <= 1)).all()


def test_mufidelity_bad_inputs():
    model = small_cnn()
    inputs, maps = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="unknown correlation"):
        mufidelity(model, inputs, None, maps, corr="kendall")
    with pytest.raises(ValueError, match="subset"):
        mufidelity(model, inputs, None, maps, subset=1.0)
    with pytest.raises(ValueError, match="samples"):
        mufidelity(model, inputs, None, maps, samples=1)
    with pytest.raises(ValueError, match="grid"):
        mufidelity(model, inputs, None, maps, grid=0)
    with pytest.raises(ValueError, match="unknown score"):
        mufidelity(model, inputs, None, maps, score="loss")
    with pytest.raises(ValueError, match="do not match"):
        mufidelity(model, inputs, None, maps[:, :, :4])
    nan_maps = maps.clone()
    nan_maps[1, 2, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        mufidelity(model, inputs, None, nan_maps)


def test_global_score():
    d, i, f = torch.tensor([0.1, 0.4]), torch.tensor([0.7, 0.5]), torch.tensor([0.2, -0.1])
    torch.testing.assert_close(global_score(d, i, f), torch.tensor([0.8, 0.0]))
    assert global_score(0.25, 0.5, 0.5) == pytest.approx(0.75)


def test_progress_bar_on_stderr(capsys):
    model, inputs, target, oracle = oracle_problem(batch=2)
    deletion(model, inputs, target, oracle, steps=3, progress=True)
    mufidelity(model, inputs, target, oracle, grid=3, samples=4, progress=True)
    err = capsys.readouterr().err
    assert "deletion" in err and "mufidelity" in err
    deletion(model, inputs, target, oracle, steps=3)
    assert capsys.readouterr().err == ""
