"""One target-score selector and one input-gradient helper for explainers, metrics, attacks and training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqlens.utils.scores import SCORES, input_gradient, select_score


def test_the_metrics_and_the_explainers_share_one_score_tuple():
    from freqlens.attribution import SCORES as explainer_scores
    from freqlens.metrics.faithfulness import SCORES as metric_scores

    assert explainer_scores is SCORES and metric_scores is SCORES
    assert set(SCORES) == {"logit", "prob", "log_prob"}


def test_half_precision_logits_are_read_in_float32():
    logits = torch.tensor([[10.0, 0.0, -10.0], [0.0, 1.0, 2.0]], dtype=torch.float16)
    target = torch.tensor([0, 2])
    prob = select_score(logits, target, "prob")
    assert prob.dtype == torch.float32
    torch.testing.assert_close(prob, logits.float().softmax(dim=1)[[0, 1], [0, 2]])
    torch.testing.assert_close(select_score(logits, target, "log_prob"), prob.log())


def test_input_gradient_of_a_linear_model_is_its_weight_row():
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    x = torch.rand(5, 4, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 1, 0])
    gradient, logits = input_gradient(model, x, lambda out: select_score(out, target, "logit"))
    torch.testing.assert_close(gradient, model.weight[target].detach())
    torch.testing.assert_close(logits, model(x).detach())
    assert not gradient.requires_grad and model.weight.grad is None


def test_input_gradient_of_an_input_the_objective_ignores_is_zero():
    x = torch.rand(2, 3)
    gradient, _ = input_gradient(lambda v: v[:, :1] * 2.0, x, lambda out: out.sum())
    torch.testing.assert_close(gradient, torch.tensor([[2.0, 0.0, 0.0], [2.0, 0.0, 0.0]]))


def test_input_gradient_refuses_a_model_that_cuts_the_graph():
    with pytest.raises(ValueError, match="does not depend on its input"):
        input_gradient(lambda v: v.detach() * 2.0, torch.rand(2, 3), lambda out: out.sum())


def test_input_gradient_works_under_no_grad():
    model = nn.Linear(3, 2)
    with torch.no_grad():
        gradient, _ = input_gradient(model, torch.rand(4, 3), lambda out: out[:, 1].sum())
    torch.testing.assert_close(gradient, model.weight[1].detach().expand(4, 3))
