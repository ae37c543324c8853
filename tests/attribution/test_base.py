"""Shared explainer helpers: input/target checks, eval mode, chunks, scores, pass counting, batching."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqlens.attribution import Saliency, count_passes
from freqlens.attribution._batching import (
    CPU_MAX_CHUNK,
    CPU_MIN_CHUNK,
    auto_batch_size,
    resolve_batch_size,
    saved_bytes_per_image,
)
from freqlens.attribution.base import (
    call_explainer,
    check_inputs,
    check_target_range,
    chunks,
    eval_mode,
    is_stochastic,
    predict,
    resolve_target,
    select_score,
)

from .conftest import IdentityExplainer, SmoothCNN, make_images


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.rand(3, 8, 8), "B×C×H×W"),
        (torch.randint(0, 255, (2, 3, 8, 8)), "floating"),
        (torch.full((2, 3, 8, 8), float("nan")), "NaN"),
        (torch.tensor([[[[0.0, float("inf")]]]]), "infinite"),
        (torch.rand(0, 3, 8, 8), "empty"),
    ],
)
def test_check_inputs_rejects_bad_inputs(bad, message):
    with pytest.raises(ValueError, match=message):
        check_inputs(bad)


def test_check_inputs_rejects_non_tensors_and_passes_good_ones():
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_inputs([[0.0]])
    x = torch.rand(2, 1, 4, 4)
    assert check_inputs(x) is x


def test_resolve_target_forms(smooth_cnn, images):
    predicted = smooth_cnn(images).argmax(1)
    assert torch.equal(resolve_target(smooth_cnn, images, None), predicted)
    assert torch.equal(resolve_target(smooth_cnn, images, None, batch_size=1), predicted)
    assert torch.equal(resolve_target(smooth_cnn, images, 3), torch.full((4,), 3))
    assert torch.equal(resolve_target(smooth_cnn, images, torch.tensor(2)), torch.full((4,), 2))
    assert torch.equal(resolve_target(smooth_cnn, images, [0, 1, 2, 3]), torch.arange(4))


@pytest.mark.parametrize(
    ("target", "message"),
    [([0, 1], "shape \\[4\\]"), (torch.zeros(4, 1, dtype=torch.long), "shape"),
     (torch.zeros(4), "integer"), (-1, "negative")],
)
def test_resolve_target_rejects(smooth_cnn, images, target, message):
    with pytest.raises(ValueError, match=message):
        resolve_target(smooth_cnn, images, target)


def test_check_target_range():
    check_target_range(torch.tensor([0, 9]), 10)
    with pytest.raises(ValueError, match="out of range"):
        check_target_range(torch.tensor([0, 10]), 10)


def test_eval_mode_restores_every_flag_even_on_error():
    model = SmoothCNN().train()
    model.features[1].eval()  # a mixed state must come back as it was
    before = [m.training for m in model.modules()]
    with pytest.raises(RuntimeError), eval_mode(model):
        assert not any(m.training for m in model.modules())
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == before


@pytest.mark.parametrize(("total", "size"), [(10, 3), (10, 10), (10, None), (1, 4), (7, 1)])
def test_chunks_cover_the_range_once(total, size):
    parts = list(chunks(total, size))
    covered = [i for part in parts for i in range(total)[part]]
    assert covered == list(range(total))
    assert all(p.stop - p.start <= (size or total) for p in parts)


def test_chunks_rejects_bad_size():
    with pytest.raises(ValueError, match="positive"):
        list(chunks(4, 0))


def test_predict_equals_one_pass(smooth_cnn, images):
    with torch.no_grad():
        expected = smooth_cnn(images)
    torch.testing.assert_close(predict(smooth_cnn, images, batch_size=3), expected)


def test_select_score_closed_forms():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)
    target = torch.tensor([1, 2])
    probs = torch.exp(logits) / torch.exp(logits).sum(1, keepdim=True)
    torch.testing.assert_close(select_score(logits, target, "logit"), torch.tensor([2.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(select_score(logits, target, "prob"), probs[[0, 1], [1, 2]])
    torch.testing.assert_close(select_score(logits, target, "log_prob"), probs[[0, 1], [1, 2]].log())
    with pytest.raises(ValueError, match="unknown score"):
        select_score(logits, target, "softmax")
    with pytest.raises(ValueError, match="out of range"):
        select_score(logits, torch.tensor([0, 3]), "logit")
    with pytest.raises(ValueError, match="B×num_classes"):
        select_score(logits[0], target, "logit")


def test_count_passes_counts_images_and_removes_its_hook(smooth_cnn, images):
    target = torch.arange(4)
    with count_passes(smooth_cnn) as count:
        Saliency(smooth_cnn, batch_size=3)(images, target)
    assert (count.forward, count.backward) == (4, 4)
    assert (count.forward_calls, count.backward_calls) == (2, 2)
    assert not smooth_cnn._forward_hooks
    with count_passes(smooth_cnn) as count:
        Saliency(smooth_cnn, batch_size=3)(images)  # + one prediction pass for target=None
    assert (count.forward, count.backward) == (8, 4)
    with pytest.raises(RuntimeError), count_passes(smooth_cnn):
        raise RuntimeError("boom")
    assert not smooth_cnn._forward_hooks
    smooth_cnn(images)  # no counting outside the block
    assert count.forward == 8


class _StochasticExplainer:
    """Declares ``stochastic = True``: the protocol's one way to receive a generator."""

    stochastic = True

    def __init__(self):
        self.seen = []

    def attribute(self, inputs, target=None, *, generator=None):
        self.seen.append(generator)
        return inputs


class _AttributeGenerator:
    """Holds a ``generator`` attribute but does not declare itself stochastic: never handed a generator."""

    def __init__(self, generator=None):
        self.generator = generator
        self.seen = []

    def attribute(self, inputs, target=None):
        self.seen.append(self.generator)
        return inputs


def test_call_explainer_hands_the_generator_to_stochastic_explainers_only():
    """One way: ``generator=`` for an explainer that declares ``stochastic``; nobody's attribute is overwritten."""
    x = torch.rand(1, 1, 2, 2)
    generator = torch.Generator()
    stochastic, deterministic = _StochasticExplainer(), IdentityExplainer()
    original = torch.Generator()
    by_attribute = _AttributeGenerator(original)
    for explainer in (stochastic, by_attribute, deterministic):
        call_explainer(explainer, x, None, generator)
    assert stochastic.seen == [generator]
    assert by_attribute.seen == [original] and by_attribute.generator is original
    assert deterministic.calls == [1]
    assert is_stochastic(stochastic) and not is_stochastic(by_attribute) and not is_stochastic(deterministic)
    call_explainer(stochastic, x, None, None)
    assert stochastic.seen == [generator, None]  # no generator given: the explainer's own stream


def test_auto_batch_size_on_cpu_is_bounded_and_follows_image_size():
    model = SmoothCNN().eval()
    small, large = make_images(shape=(3, 16, 16)), make_images(shape=(3, 128, 128))
    bytes_small, bytes_large = saved_bytes_per_image(model, small), saved_bytes_per_image(model, large)
    # Activations scale with the pixel count (64× more pixels).
    assert 32 < bytes_large / bytes_small <= 70
    chunk_small, chunk_large = auto_batch_size(model, small), auto_batch_size(model, large)
    assert CPU_MIN_CHUNK <= chunk_large <= chunk_small <= CPU_MAX_CHUNK
    assert chunk_large < chunk_small
    assert [m.training for m in model.modules()] == [False] * len(list(model.modules()))


def test_saved_bytes_probe_leaves_model_untouched():
    model = SmoothCNN().train()
    saved_bytes_per_image(model, make_images(shape=(3, 20, 20)))
    assert model.training and all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "8"])
def test_resolve_batch_size_rejects(bad):
    with pytest.raises(ValueError, match="batch_size"):
        resolve_batch_size(bad, nn.Identity(), torch.rand(1, 1, 2, 2))


def test_resolve_batch_size_passes_explicit_value():
    assert resolve_batch_size(5, nn.Identity(), torch.rand(1, 1, 2, 2)) == 5
