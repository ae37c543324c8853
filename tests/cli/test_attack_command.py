"""``freqlens attack``: attack.json and the RCT map written; user errors give one line and exit 2."""

from __future__ import annotations

import json

import pytest
import torch

from freqlens.attacks import FGSM
from freqlens.cli import main
from freqlens.data import load_dataset, pick_indices
from freqlens.models import build, load
from freqlens.spectral import rct
from freqlens.training import train


@pytest.fixture(autouse=True)
def _single_thread():
    """One intra-op thread: tiny models on a busy 2-core machine are much faster that way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("attack")
    data = load_dataset("demo-mnist", "train").subset(range(0, 2000, 4))
    torch.manual_seed(0)
    model = build("lenet", in_channels=1, num_classes=10)
    try:
        train(model, data, epochs=2, lr=3e-3, out_dir=root / "run", progress=False)
    finally:
        torch.set_num_threads(threads)
    return root / "run" / "best.pt"


def test_fgsm_writes_summary_and_rct_map(checkpoint, tmp_path):
    out = tmp_path / "out"
    code = main(["attack", "--checkpoint", str(checkpoint), "--dataset", "demo-mnist", "--attack", "fgsm",
                 "--eps", "8/255", "--n-images", "24", "--batch-size", "10", "--quiet", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "attack.json").read_text())
    assert summary["settings"]["eps"] == pytest.approx(8 / 255)
    assert summary["n_images"] == 24
    # cross-check with the library on the same images
    model = load(checkpoint)
    test = load_dataset("demo-mnist", "test")
    chosen = pick_indices(len(test), 24, seed=0)  # the command's default --seed
    x, y = test.float_images(chosen), test.labels[chosen]
    x_adv = FGSM(model, eps=8 / 255)(x, y)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean()
        robust = (model(x_adv).argmax(1) == y).float().mean()
    assert summary["clean_accuracy"] == pytest.approx(float(clean))
    assert summary["robust_accuracy"] == pytest.approx(float(robust))
    assert summary["mean_linf"] == pytest.approx(8 / 255, rel=1e-4)
    saved = torch.load(out / "rct.pt", weights_only=True)
    torch.testing.assert_close(saved["rct"], rct(x, x_adv))
    assert (out / "rct.png").read_bytes()[:4] == b"\x89PNG"


def test_simba_records_queries_and_log_scale_figure(checkpoint, tmp_path):
    out = tmp_path / "simba"
    assert main(["attack", "--checkpoint", str(checkpoint), "--dataset", "demo-mnist", "--attack", "simba",
                 "--steps", "40", "--n-images", "6", "--log-scale", "--quiet", "--out", str(out)]) == 0
    summary = json.loads((out / "attack.json").read_text())
    assert 1 <= summary["mean_queries"] <= 40
    assert summary["settings"]["max_queries"] == 40 and summary["rct"]["log_scale"] is True
    assert (out / "rct.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, fragment", [
    (["--attack", "deepfool"], "unknown attack"),
    (["--attack", "pgd", "--checkpoint", "{tmp}/missing.pt"], "missing.pt"),
])
def test_user_errors_one_line_exit_2(checkpoint, tmp_path, capsys, args, fragment):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--checkpoint" not in args:
        args += ["--checkpoint", str(checkpoint)]
    code = main(["attack", "--dataset", "demo-mnist", "--n-images", "2", "--out", str(tmp_path / "o"), *args])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]
    assert not (tmp_path / "o" / "attack.json").exists()
