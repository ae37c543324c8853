"""rank_methods: oracle ranking on a linear model, counted costs, FORGrad rows without re-attribution,
the Table-1 markdown, batch-size invariance."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from freqlens.analysis import Ranking, rank_methods
from freqlens.analysis.sigma_search import default_sigmas
from freqlens.attribution import GradientInput, IntegratedGradients, Occlusion, Saliency
from freqlens.attribution.base import Explainer
from freqlens.metrics import deletion, insertion, mufidelity
from freqlens.spectral import lowpass

SIZE = 8
FAST = {"steps": 8, "mufidelity_samples": 32, "progress": False}


class RandomMaps(Explainer):
    """Maps of i.i.d. noise (seeded), counting its calls."""

    label = "random"

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.calls = 0

    def attribute(self, inputs, target=None):
        self.calls += 1
        return torch.randn(inputs.shape, generator=torch.Generator().manual_seed(123))


class Counting(Explainer):
    """Wraps an explainer and counts the calls of ``attribute``."""

    def __init__(self, inner: Explainer, label: str) -> None:
        super().__init__(inner.model)
        self.inner, self.label, self.calls = inner, label, 0

    def attribute(self, inputs, target=None):
        self.calls += 1
        return self.inner.attribute(inputs, target)


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 3))
    inputs = torch.rand(6, 1, SIZE, SIZE)
    return model, inputs


def test_gradient_input_is_the_oracle_on_a_linear_model(linear):
    model, inputs = linear
    ranking = rank_methods(model, inputs, methods=("saliency", "gradient_input", RandomMaps(model)),
                           forgrad=False, generator=torch.Generator().manual_seed(0), **FAST)
    rows = {row.method: row for row in ranking.rows}
    # logit drop of a linear model = sum of w·x over the removed pixels = the removed Grad×Input mass
    assert torch.allclose(rows["gradient_input"].values["mufidelity"], torch.ones(6, dtype=torch.float64), atol=1e-3)
    assert ranking.order[0] == "gradient_input"
    assert set(ranking.order) == {"saliency", "gradient_input", "random"}
    assert ranking.forgrad_rows == [] and ranking.rank_change() == {}
    # the score is I + F − D image by image
    row = rows["saliency"]
    torch.testing.assert_close(row.values["score"],
                               row.values["insertion"] + row.values["mufidelity"] - row.values["deletion"])


def test_metrics_match_direct_calls(linear):
    model, inputs = linear
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    ranking = rank_methods(model, inputs, target, methods=("saliency",), forgrad=False, grid=4,
                           generator=torch.Generator().manual_seed(5), **FAST)
    maps = Saliency(model)(inputs, target)
    values = ranking.rows[0].values
    torch.testing.assert_close(values["deletion"], deletion(model, inputs, target, maps, steps=8).double())
    torch.testing.assert_close(values["insertion"], insertion(model, inputs, target, maps, steps=8).double())
    # MuFidelity masks: a seed drawn once from the generator, then a fresh generator per row
    seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(5)).item())
    expected = mufidelity(model, inputs, target, maps, grid=4, samples=32, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(values["mufidelity"], expected.double())


@pytest.mark.parametrize(
    "explainer, forward, backward",
    [
        (lambda m: Saliency(m), 1, 1),
        (lambda m: IntegratedGradients(m, steps=7), 7, 7),  # no probe: the target is resolved before
        (lambda m: Occlusion(m, patch=4, stride=2), 1 + 3 * 3, 0),  # clean pass + 3×3 patch positions at 8 px
    ],
)
def test_counted_cost_per_image(linear, explainer, forward, backward):
    model, inputs = linear
    ranking = rank_methods(model, inputs, methods=(("m", explainer(model)),), forgrad=False, **FAST)
    row = ranking.rows[0]
    assert (row.forward, row.backward, row.passes) == (forward, backward, forward + backward)
    assert row.seconds > 0


def test_forgrad_rows_reuse_the_maps(linear):
    model, inputs = linear
    counted = [Counting(Saliency(model), "saliency"), RandomMaps(model)]
    sigmas = [1.0, 2.0, 4.0]
    ranking = rank_methods(model, inputs, methods=counted, forgrad="auto", sigmas=sigmas, **FAST)
    assert [c.calls for c in counted] == [1, 1]  # σ* searched on the inputs with the cached maps
    assert ranking.sigma_source == "inputs"
    assert [r.method for r in ranking.forgrad_rows] == ["saliency", "random"]
    for row in ranking.forgrad_rows:
        assert row.sigma in sigmas and row.search is not None and row.search.sigma_star == row.sigma
        assert row.forgrad and row.label == f"{row.method}*"
    # the * row is the FORGrad map (default: magnitude) of the original maps at σ*:
    # its Deletion equals that of |lowpass(|mean_c φ|, σ*)|
    assert ranking.mode == "magnitude" and ranking.to_dict()["forgrad_mode"] == "magnitude"
    star = ranking.forgrad_rows[0]
    maps = Saliency(model)(inputs)
    filtered = lowpass(maps.mean(dim=1, keepdim=True).abs(), star.sigma, "box").abs()
    expected = deletion(model, inputs, None, filtered, steps=8).double()
    torch.testing.assert_close(star.values["deletion"], expected)
    search = ranking.to_dict()["forgrad"][0]["sigma_search"]
    assert search["mode"] == "magnitude" and len(search["gain_over_unfiltered"]) == len(sigmas)
    assert set(ranking.rank_change()) == {"saliency", "random"}


def test_paper_ranking_filters_only_gradient_methods(linear):
    model, inputs = linear
    methods = ("saliency", ("occ", Occlusion(model, patch=4, stride=2)), "gradient_input")
    ranking = rank_methods(model, inputs, methods=methods, forgrad=2.0, **FAST)
    pool = {row.label: row for row in ranking.paper_pool()}
    assert set(pool) == {"saliency*", "occ", "gradient_input*"}  # Occlusion is black-box: not filtered
    scores = {label: row.mean("score") for label, row in pool.items()}
    assert ranking.paper_order == sorted(scores, key=lambda label: -scores[label])
    after = [label.rstrip("*") for label in ranking.paper_order]
    assert ranking.rank_change() == {m: ranking.order.index(m) - after.index(m) for m in ("saliency", "occ",
                                                                                          "gradient_input")}
    assert ranking.to_dict()["ranking"]["forgrad"] == ranking.paper_order
    assert len(ranking.forgrad_order) == 3  # every method's * row is still evaluated


def test_calibration_set_and_fixed_sigma(linear):
    model, inputs = linear
    explainer = Counting(Saliency(model), "saliency")
    calibration = (torch.rand(3, 1, SIZE, SIZE), None)
    ranking = rank_methods(model, inputs, methods=(explainer,), forgrad=True, calibration=calibration, **FAST)
    assert explainer.calls == 2  # the evaluated images once, the held-out calibration images once
    assert ranking.sigma_source == "calibration"
    assert ranking.forgrad_rows[0].sigma in default_sigmas(SIZE, SIZE)
    fixed = rank_methods(model, inputs, methods=("saliency",), forgrad=2.0, **FAST)
    assert fixed.forgrad_rows[0].sigma == 2.0 and fixed.sigma_source == "fixed"


def test_per_method_sigmas_reuse_an_earlier_search(linear):
    """forgrad={label: SigmaSearch}: no second search (the explainer runs on the evaluated images only), the
    same σ* and * rows equal to those of a fixed σ; a missing label or a search of the other pipeline fails."""
    model, inputs = linear
    calibration = (torch.rand(3, 1, SIZE, SIZE), None)
    first = rank_methods(model, inputs, methods=("saliency", "gradient_input"), forgrad=True,
                         calibration=calibration, **FAST)
    searches = {row.method: row.search for row in first.forgrad_rows}
    explainer = Counting(Saliency(model), "saliency")
    again = rank_methods(model, inputs, methods=(explainer,), forgrad={"saliency": searches["saliency"]}, **FAST)
    assert explainer.calls == 1 and again.sigma_source == "given"
    assert again.forgrad_rows[0].sigma == searches["saliency"].sigma_star
    assert again.forgrad_rows[0].search is searches["saliency"]
    fixed = rank_methods(model, inputs, methods=("saliency",), forgrad=searches["saliency"].sigma_star, **FAST)
    for name in fixed.forgrad_rows[0].values:
        torch.testing.assert_close(again.forgrad_rows[0].values[name], fixed.forgrad_rows[0].values[name])
    with pytest.raises(ValueError, match="not for the method 'gradient_input'"):
        rank_methods(model, inputs, methods=("gradient_input",), forgrad={"saliency": 2.0}, **FAST)
    with pytest.raises(ValueError, match="pipeline"):
        rank_methods(model, inputs, methods=("saliency",), forgrad={"saliency": searches["saliency"]},
                     mode="signed", **FAST)
    with pytest.raises(ValueError, match="positive"):
        rank_methods(model, inputs, methods=("saliency",), forgrad={"saliency": 0.0}, **FAST)


def test_markdown_and_dict(linear):
    model, inputs = linear
    ranking = rank_methods(model, inputs, methods=("saliency", "gradient_input", RandomMaps(model)),
                           forgrad=2.0, generator=torch.Generator().manual_seed(0), mode="signed", **FAST)
    text = ranking.to_markdown()
    table = [line for line in text.split("\n\n")[0].splitlines()[2:]]
    labels = [line.split("|")[1].strip() for line in table]
    assert labels == ["saliency", "saliency* (σ=2)", "gradient_input", "gradient_input* (σ=2)", "random",
                      "random* (σ=2)"]
    cells = [[c.strip() for c in line.strip("|").split("|")[1:]] for line in table]
    for column in range(len(cells[0])):
        bold = [i for i, row in enumerate(cells) if row[column].startswith("**")]
        assert bold, f"column {column} has no bold cell"
        bold_values = {cells[i][column] for i in bold}
        assert len(bold_values) == 1  # only the (tied) best value is bold
    # the bold cell of the I+F−D column (index 3) is the best mean score
    best = max(ranking.rows + ranking.forgrad_rows, key=lambda r: r.mean("score"))
    assert cells[[r.label for r in _table_rows(ranking)].index(best.label)][3].startswith("**")
    assert re.search(r"\| 1 \| gradient_input \|", text)

    data = ranking.to_dict()
    assert data["ranking"]["original"] == ranking.order
    saliency = data["methods"][0]
    assert saliency["method"] == "saliency" and len(saliency["metrics"]["deletion"]["values"]) == 6
    values = torch.tensor(saliency["metrics"]["insertion"]["values"], dtype=torch.float64)
    assert saliency["metrics"]["insertion"]["mean"] == pytest.approx(float(values.mean()))
    assert saliency["metrics"]["insertion"]["std"] == pytest.approx(float(values.std(unbiased=False)))
    assert saliency["cost"]["passes_per_image"] == 2


def _table_rows(ranking: Ranking):
    return [r for row in ranking.rows for r in (row, *[f for f in ranking.forgrad_rows if f.method == row.method])]


def test_results_do_not_depend_on_batch_size(linear):
    model, inputs = linear
    runs = [rank_methods(model, inputs, methods=("saliency", "integrated_gradients"), forgrad="auto",
                         sigmas=[1.0, 4.0], batch_size=b, generator=torch.Generator().manual_seed(0), **FAST)
            for b in (1, None)]
    for a, b in zip(runs[0].rows + runs[0].forgrad_rows, runs[1].rows + runs[1].forgrad_rows):
        assert a.sigma == b.sigma and (a.forward, a.backward) == (b.forward, b.backward)
        for name in a.values:
            torch.testing.assert_close(a.values[name], b.values[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"methods": ("nope",)}, "unknown attribution method"),
        ({"methods": ()}, "non-empty"),
        ({"methods": ("saliency", "gradient")}, "twice"),
        ({"forgrad": -1.0}, "positive"),
        ({"forgrad": "sometimes"}, "forgrad"),
        ({"calibration": torch.rand(2, 1, SIZE, SIZE)}, "pair"),
    ],
)
def test_bad_arguments(linear, kwargs, fragment):
    model, inputs = linear
    kwargs = {"methods": ("saliency",), **kwargs}
    with pytest.raises(ValueError, match=fragment):
        rank_methods(model, inputs, **{**FAST, **kwargs})


@pytest.mark.parametrize("mode", ["magnitude", "signed"])
def test_original_rows_are_paired_with_the_forgrad_rows(linear, mode):
    """With FORGrad on, the original row uses the * row's convention without low-pass (σ = ∞): at a σ at or
    above Nyquist the two rows are identical; with FORGrad off the rows are the explainers' own maps."""
    model, inputs = linear
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    methods = ("gradient_input", ("occ", Occlusion(model, patch=4, stride=2)))
    ranking = rank_methods(model, inputs, target, methods=methods, forgrad=float(SIZE // 2), mode=mode,
                           generator=torch.Generator().manual_seed(0), **FAST)
    for row, star in zip(ranking.rows, ranking.forgrad_rows):
        for name in ("deletion", "insertion", "mufidelity", "hf_power_ratio"):
            torch.testing.assert_close(star.values[name], row.values[name], rtol=0, atol=0)
    gxi = GradientInput(model)(inputs, target)
    paired = gxi.abs() if mode == "magnitude" else gxi  # one channel: |mean_c φ| = |φ|
    expected = deletion(model, inputs, target, paired, steps=8).double()
    torch.testing.assert_close(ranking.rows[0].values["deletion"], expected)
    assert ranking.mode == mode
    off = rank_methods(model, inputs, target, methods=methods, forgrad=False, mode=mode, **FAST)
    assert off.mode is None and off.to_dict()["forgrad_mode"] is None
    torch.testing.assert_close(off.rows[0].values["deletion"], deletion(model, inputs, target, gxi, steps=8).double())
    if mode == "magnitude":  # |Grad × Input| loses the sign that the linear model's oracle needs
        assert not torch.allclose(ranking.rows[0].values["mufidelity"], off.rows[0].values["mufidelity"])


def test_per_metric_rankings_and_the_sigma_criterion(linear):
    """Ranking.order_by: one metric alone, best first (Deletion ascending); rank_methods(criterion=...)
    reaches the σ search of every * row."""
    model, inputs = linear
    ranking = rank_methods(model, inputs, methods=("saliency", "gradient_input", "smoothgrad"), forgrad=True,
                           criterion="score", **FAST)
    assert all(row.search.criterion == "score" for row in ranking.forgrad_rows)
    for metric, higher in (("deletion", False), ("insertion", True), ("mufidelity", True), ("score", True)):
        order = ranking.order_by(metric)
        means = {row.method: row.mean(metric) for row in ranking.rows}
        values = [means[m] for m in order]
        assert values == sorted(values, reverse=higher)
        assert ranking.to_dict()["ranking"]["by_metric"][metric]["original"] == order
    assert ranking.order_by("score") == ranking.order
    with pytest.raises(ValueError, match="unknown metric"):
        ranking.order_by("accuracy")
    with pytest.raises(ValueError, match="unknown criterion"):
        rank_methods(model, inputs, methods=("saliency",), criterion="accuracy", **FAST)
