"""The HTML report opened in headless Chromium: every figure decodes and the page logs no error.

Runs with the default suite when a Chromium binary is found (``chromium``, ``chromium-browser``,
``google-chrome`` on PATH, or ``$FREQLENS_CHROMIUM``) and skips otherwise; ``make e2e`` installs Debian's
``chromium`` and runs only these tests, failing instead of skipping (``FREQLENS_E2E_REQUIRE=1``). The screenshot of the real study report is written to
``$FREQLENS_E2E_OUT/report.png`` (default ``e2e-out/report.png`` in the repository) and to the test's
temporary folder. Two deliberately broken reports prove that the check can fail.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from freqlens.report import heatmaps, line_plot, write_report
from freqlens.studies.noise_tunnel import NoiseTunnelConfig, run_noise_tunnel

from .chromium import PageCheck, check_page, find_chromium

CHROMIUM = find_chromium()
REPO = Path(__file__).resolve().parents[2]
NOT_DECODED = "EncodingError: The source image cannot be decoded."
TINY = dataclasses.replace(NoiseTunnelConfig(), epochs=1, n_train=300, n_images=4, n_samples=4, ig_steps=8)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser binary; skips (fails under ``make e2e``, which sets ``FREQLENS_E2E_REQUIRE=1``) without."""
    if CHROMIUM is None:
        override = os.environ.get("FREQLENS_CHROMIUM")
        where = f"$FREQLENS_CHROMIUM={override!r} is not an executable" if override else (
            "no chromium / chromium-browser / google-chrome on PATH and $FREQLENS_CHROMIUM unset"
        )
        message = f"headless-Chromium report check needs a browser: {where}; `make e2e` installs Debian's chromium"
        if os.environ.get("FREQLENS_E2E_REQUIRE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def report_problems(check: PageCheck) -> list[str]:
    """The acceptance check: one line per undecoded image and per console error (empty = passes)."""
    problems = [
        f"image not decoded (naturalWidth 0): {image['alt']!r} ({image['decodeError']})"
        for image in check.broken_images
    ]
    return problems + check.errors


@pytest.fixture(scope="module")
def study_report(chromium, tmp_path_factory) -> tuple[Path, list[dict]]:
    """A real (tiny) noise-tunnel study run and its report; also returns its figure entries."""
    out = tmp_path_factory.mktemp("study")
    results = run_noise_tunnel(out, TINY, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    return write_report(out), json.loads(results.read_text())["figures"]


def _handmade_report(out: Path, *, corrupt: str = "", script: str = "") -> Path:
    """A one-study report with two real figures; ``corrupt="not-png"`` replaces the embedded ``ramp.png`` by text,
    ``corrupt="bad-header"`` flips one byte of its IHDR chunk (CRC mismatch); ``script`` is appended to
    the page as an inline ``<script>``."""
    study = out / "handmade"
    line_plot({"a": ([0, 1, 2], [1.0, 0.5, 0.25])}, study / "curve.png", xlabel="step", ylabel="value")
    heatmaps({"ramp": torch.arange(64.0).reshape(8, 8)}, study / "ramp.png")
    if corrupt == "bad-header":
        data = bytearray((study / "ramp.png").read_bytes())
        data[20] ^= 0xFF  # inside the IHDR chunk: image height, now inconsistent with the chunk's CRC
        (study / "ramp.png").write_bytes(bytes(data))
    figures = [{"file": "curve.png", "caption": "curve"}, {"file": "ramp.png", "caption": "ramp"}]
    (study / "results.json").write_text(json.dumps({"study": "handmade", "title": "Handmade", "figures": figures}))
    page = write_report(out)
    if corrupt == "not-png":  # write_report refuses a non-PNG figure file, so corrupt the embedded copy
        embedded = base64.b64encode((study / "ramp.png").read_bytes()).decode("ascii")
        text = base64.b64encode(b"this is not a PNG file\n" * 20).decode("ascii")
        page.write_text(page.read_text().replace(embedded, text))
    if script:
        page.write_text(page.read_text().replace("</body>", f"<script>{script}</script></body>"))
    return page


def _save_screenshot(check: PageCheck) -> Path:
    """Copy the screenshot to the stable place ``$FREQLENS_E2E_OUT/report.png``."""
    stable = Path(os.environ.get("FREQLENS_E2E_OUT", REPO / "e2e-out")) / "report.png"
    stable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(check.screenshot, stable)
    print(f"report screenshot: {stable}")
    return stable


def test_study_report_renders(chromium, study_report, tmp_path):
    page, figures = study_report
    check = check_page(chromium, page, tmp_path / "report.png")
    _save_screenshot(check)
    assert report_problems(check) == []
    # one <img> per figure of results.json, each decoded at the PNG's own size
    assert [image["alt"] for image in check.images] == [figure["caption"] for figure in figures]
    for image, figure in zip(check.images, figures):
        with Image.open(page.parent / "noise-tunnel" / figure["file"]) as png:
            assert (image["naturalWidth"], image["naturalHeight"]) == png.size, figure["file"]
    with Image.open(io.BytesIO(check.screenshot.read_bytes())) as shot:
        assert shot.format == "PNG" and shot.width >= 800 and shot.height >= 900
        low, high = shot.convert("L").getextrema()
        assert high - low > 100  # text and figures, not a blank page


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not-png", [f"image not decoded (naturalWidth 0): 'ramp' ({NOT_DECODED})"]),
        ("bad-header", [f"image not decoded (naturalWidth 0): 'ramp' ({NOT_DECODED})"]),
        ("console-error", ["console.error: report broken 42"]),
        ("exception", ["uncaught exception: Error: thrown by the report"]),
    ],
)
def test_check_detects_broken_report(chromium, case, expected, tmp_path):
    if case in ("not-png", "bad-header"):
        page = _handmade_report(tmp_path, corrupt=case)
    elif case == "console-error":
        page = _handmade_report(tmp_path, script="console.error('report broken', 42)")
    else:
        page = _handmade_report(tmp_path, script="throw new Error('thrown by the report')")
    check = check_page(chromium, page, tmp_path / "shot.png")
    assert [image["alt"] for image in check.images] == ["curve", "ramp"]
    assert check.images[0]["naturalWidth"] > 0 and not check.images[0]["decodeError"]  # intact one decodes
    assert report_problems(check) == expected
    assert check.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
