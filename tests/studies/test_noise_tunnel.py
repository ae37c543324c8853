"""The noise-tunnel study and the study framework (configs, claims, model cache) at a tiny demo scale."""

from __future__ import annotations

import dataclasses
import json

import pytest

from freqlens.errors import FreqlensError
from freqlens.studies.base import Claim, compare, config_hash, load_config, write_results
from freqlens.studies.noise_tunnel import METHODS, NoiseTunnelConfig, run_noise_tunnel

from .contract import check_study_contract

TINY = dataclasses.replace(NoiseTunnelConfig(), dataset="demo-mnist", zoo="", epochs=1, n_train=500, n_images=4,
                           n_samples=4, ig_steps=8)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    first = run_noise_tunnel(tmp_path_factory.mktemp("run1"), TINY, cache_dir=cache, progress=False)
    return cache, first


def test_results_schema(study):
    _, path = study
    results = json.loads(path.read_text())
    check_study_contract(path, results, "noise-tunnel", TINY)
    assert [row[0] for row in results["tables"][0]["rows"]] == list(METHODS)


def test_claims_hold_iff_their_numbers_compare(study):
    _, path = study
    results = json.loads(path.read_text())
    measures = results["measures"]
    hf = {name: values["hf_power_ratio"] for name, values in measures.items()}
    first = results["claims"][0]
    assert (first["left"], first["right"]) == (hf["SmoothGrad(IG)"], hf["IG"])
    # the table and the measures agree
    for row in results["tables"][0]["rows"]:
        assert row[1] == pytest.approx(hf[row[0]], abs=1e-6)


def test_rerun_is_identical_and_reuses_the_model(study, tmp_path, monkeypatch):
    cache, first = study
    checkpoints = list(cache.glob("*/best.pt"))
    assert len(checkpoints) == 1
    mtime = checkpoints[0].stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model should have been reused")

    monkeypatch.setattr("freqlens.training.train", no_training)
    second = run_noise_tunnel(tmp_path, TINY, cache_dir=cache, progress=False)
    one, two = json.loads(first.read_text()), json.loads(second.read_text())
    assert one["measures"] == two["measures"]
    assert one["claims"] == two["claims"]
    assert two["summary"]["model reused (zoo or cache)"] is True
    assert one["summary"]["model reused (zoo or cache)"] is False
    assert checkpoints[0].stat().st_mtime_ns == mtime


@pytest.mark.parametrize("relation, left, right, holds", [
    ("<", 1.0, 2.0, True), ("<", 2.0, 2.0, False), ("<=", 2.0, 2.0, True), (">", 3.0, 2.0, True),
    (">=", 1.0, 2.0, False),
])
def test_claim_holds_is_computed(relation, left, right, holds):
    claim = Claim("c", "004", "f.png", "a", left, relation, "b", right)
    assert claim.holds is holds
    assert claim.to_dict()["holds"] is holds
    assert compare(left, relation, right) is holds
    with pytest.raises(ValueError, match="relation"):
        compare(left, "==", right)


def test_load_config_overrides(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('n_images = 5\nnoise_level = 1\nmodel = "mlp"\n')
    config = load_config(NoiseTunnelConfig, None, toml, ["n_samples=7", "noise_level=0.25"])
    assert (config.n_images, config.model, config.n_samples, config.noise_level) == (5, "mlp", 7, 0.25)
    assert isinstance(config.noise_level, float) and isinstance(config.n_samples, int)
    assert NoiseTunnelConfig.for_scale("cpu").n_images > NoiseTunnelConfig.for_scale("demo").n_images


@pytest.mark.parametrize("toml, overrides, match", [
    (None, ["colour=red"], "unknown config key"),
    (None, ["n_images=many"], "cannot read"),
    (None, ["n_images"], "key=value"),
    ('bogus = 1\n', [], "unknown config key"),
    ('n_images = "4"\n', [], "must be int"),
    ('n_images = \n', [], "cannot read config file"),
])
def test_load_config_errors(tmp_path, toml, overrides, match):
    path = None
    if toml is not None:
        path = tmp_path / "c.toml"
        path.write_text(toml)
    with pytest.raises(FreqlensError, match=match):
        load_config(NoiseTunnelConfig, None, path, overrides)


def test_config_hash_tracks_every_field():
    assert config_hash(TINY) == config_hash(dataclasses.replace(TINY))
    assert config_hash(TINY) != config_hash(dataclasses.replace(TINY, seed=1))
    assert config_hash(TINY) != config_hash(dataclasses.replace(TINY, noise_level=0.2))
    with pytest.raises(FreqlensError, match="scale"):
        NoiseTunnelConfig.for_scale("huge")


def test_write_results_is_json(tmp_path):
    path = write_results(tmp_path, {"study": "x", "value": 1.5})
    assert json.loads(path.read_text()) == {"study": "x", "value": 1.5}
