"""Attacks by name (:func:`freqlens.attacks.make_attack`): the classes, the defaults of ``freqlens attack``
and the one-line errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqlens.attacks import ATTACKS, CW, FGSM, PGD, LowFrequencyPGD, SimBA, make_attack
from freqlens.errors import FreqlensError


def _model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))


def test_every_name_builds_its_attack_with_the_command_defaults() -> None:
    model = _model()
    built = {name: make_attack(name, model) for name in ATTACKS}
    assert type(built["fgsm"]) is FGSM and built["fgsm"].eps == pytest.approx(8 / 255)
    assert type(built["pgd"]) is PGD and built["pgd"].norm == "inf" and built["pgd"].steps == 10
    assert built["pgd"].alpha == pytest.approx(8 / 255 / 4)
    assert built["pgd-l2"].norm == "2" and built["pgd-l2"].eps == 0.5
    assert built["pgd-l2"].alpha == pytest.approx(0.1)
    assert type(built["lfpgd"]) is LowFrequencyPGD and built["lfpgd"].cutoff == 8
    assert type(built["cw"]) is CW and built["cw"].steps == 100
    assert type(built["simba"]) is SimBA and built["simba"].max_queries == 1000 and built["simba"].eps == 0.2


def test_names_ignore_case_and_spaces_and_settings_reach_the_attack() -> None:
    generator = torch.Generator()
    attack = make_attack(" PGD-L2 ", _model(), eps=1.0, steps=3, alpha=0.3, restarts=2, generator=generator)
    assert (attack.norm, attack.eps, attack.steps, attack.alpha, attack.restarts) == ("2", 1.0, 3, 0.3, 2)
    assert make_attack("simba", _model(), steps=7).max_queries == 7  # SimBA's query budget


def test_unknown_names_and_bad_settings_raise_one_line_errors() -> None:
    with pytest.raises(FreqlensError,
                       match="unknown attack 'deepfool'; expected one of fgsm, pgd, pgd-l2, cw, simba, lfpgd"):
        make_attack("deepfool", _model())
    with pytest.raises(FreqlensError, match="^pgd: steps must be an integer"):
        make_attack("pgd", _model(), steps=-1)
