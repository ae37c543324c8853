"""The study registry: every study is reachable by name, its presets are overridable plain configs, and
``run_study`` applies the TOML file then the ``key=value`` overrides to the scale preset."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from freqlens.errors import FreqlensError
from freqlens.studies.base import SCALES, config_hash, load_config
from freqlens.studies.registry import STUDIES, get_study, run_study


@pytest.mark.parametrize("name", list(STUDIES))
@pytest.mark.parametrize("scale", SCALES)
def test_presets_are_plain_overridable_configs(name, scale):
    config_class = STUDIES[name].config_class()
    config = config_class.for_scale(scale)
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config):
        assert hints[field.name] in (int, float, str, bool), (name, field.name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1  # the configs are frozen: a run cannot change its own numbers
    changed = load_config(config_class, config, overrides=[f"seed={config.seed + 1}"])
    assert changed.seed == config.seed + 1
    assert config_hash(changed) != config_hash(config)
    assert config_hash(load_config(config_class, config)) == config_hash(config)


@pytest.mark.parametrize("name", list(STUDIES))
def test_demo_preset_uses_the_shipped_sample_and_the_zoo(name):
    demo = STUDIES[name].config_class().for_scale("demo")
    assert demo.dataset == "demo-cifar10" and demo.zoo == "cifar10" and not demo.retrain


def test_unknown_study_is_a_clear_error():
    with pytest.raises(FreqlensError, match="unknown study 'nope'.*noise-tunnel"):
        get_study("nope")


def test_run_study_applies_file_then_overrides(tmp_path, monkeypatch):
    seen = {}

    def fake_run(out_dir, config, scale, **kwargs):
        seen.update(config=config, scale=scale, **kwargs)
        return tmp_path / "results.json"

    monkeypatch.setattr("freqlens.studies.noise_tunnel.run_noise_tunnel", fake_run)
    toml = tmp_path / "c.toml"
    toml.write_text("n_images = 5\nnoise_level = 0.3\n")
    run_study("noise-tunnel", tmp_path, "cpu", config_file=toml, overrides=["n_images=7"], progress=False)
    config = seen["config"]
    assert (config.n_images, config.noise_level) == (7, 0.3)  # the override wins over the file
    assert config.ig_steps == type(config).for_scale("cpu").ig_steps  # the rest is the cpu preset
    assert seen["scale"] == "cpu" and seen["progress"] is False
    with pytest.raises(FreqlensError, match="unknown scale"):
        run_study("noise-tunnel", tmp_path, "huge")
    with pytest.raises(FreqlensError, match="unknown config key 'bogus'"):
        run_study("noise-tunnel", tmp_path, overrides=["bogus=1"])
