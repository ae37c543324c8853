"""Attribution shift: a model that reads only the image mean keeps all attribution in band 0, a model
that reads the highest DCT basis function puts it in the highest band."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from freqlens.analysis.attribution_shift import attribution_shift
from freqlens.spectral import dct2, idct2


class MeanReader(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=(1, 2, 3))
        return torch.stack([mean, -mean], dim=1)


class HighestBandReader(nn.Module):
    """Reads the DCT coefficient (H−1, W−1), the only one of the highest band."""

    def forward(self, x: Tensor) -> Tensor:
        score = dct2(x)[..., -1, -1].sum(dim=1)
        return torch.stack([score, -score], dim=1)


def test_low_band_share_separates_the_two_models():
    torch.manual_seed(0)
    one_hot = torch.zeros(8, 8, dtype=torch.float64)
    one_hot[-1, -1] = 1.0
    # images whose highest-band coefficient is clearly positive (≈ 0.5): class 0's logit rises with it
    x = 0.45 + 0.05 * torch.rand(6, 1, 8, 8, dtype=torch.float64) + 0.5 * idct2(one_hot)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    shift = attribution_shift(MeanReader(), HighestBandReader(), x, labels, cutoff=4)
    for c in (0, 1):
        natural, robust = shift.natural[c], shift.robust[c]
        assert natural.shape == (15,)
        assert torch.allclose(natural[1:], torch.zeros(14, dtype=natural.dtype), atol=1e-12)
        assert torch.allclose(robust[:-1], torch.zeros(14, dtype=robust.dtype), atol=1e-9)
    assert shift.natural_low_share[0] == 1.0  # class 0: the mean raises its logit
    assert shift.robust[0][-1] > 0.4 and shift.robust_low_share[0] < 1e-9
    summary = shift.to_dict(["zero", "one"])
    assert set(summary["classes"]) == {"zero", "one"}


def test_bad_cutoff():
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="cutoff"):
        attribution_shift(MeanReader(), MeanReader(), x, torch.tensor([0, 1]), cutoff=15)
