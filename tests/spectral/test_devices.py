"""Device-agnostic check: every spectral function runs on the input's device and agrees with the CPU.

Runs on the CPU everywhere and, where present, on CUDA / MPS (float32 only, as MPS has no float64).
"""

from __future__ import annotations

import pytest
import torch

from freqlens import spectral

DEVICES = ["cpu"]
if torch.cuda.is_available():
    DEVICES.append("cuda")
if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
    DEVICES.append("mps")

FUNCTIONS = {
    "dct2": lambda m, _: spectral.dct2(m),
    "idct2": lambda m, _: spectral.idct2(m),
    "power_spectrum": lambda m, _: spectral.power_spectrum(m),
    "radial_profile": lambda m, _: spectral.radial_profile(spectral.power_spectrum(m)),
    "lowpass_box": lambda m, _: spectral.lowpass(m, 3),
    "lowpass_sweep": lambda m, _: spectral.lowpass(m, [0, 2.5, 100], "disk"),
    "lowpass_gaussian": lambda m, _: spectral.lowpass(m, 2, "gaussian"),
    "hf_power_ratio": lambda m, _: spectral.hf_power_ratio(m),
    "laplacian_energy": lambda m, _: spectral.laplacian_energy(m),
    "compression_ratio": lambda m, _: spectral.compression_ratio(m),
    "rct": lambda m, other: spectral.rct(m, other),
    "band_mask": lambda m, _: spectral.band_mask(*m.shape[-2:], range(4), device=m.device),
    "lowpass_mask": lambda m, _: spectral.lowpass_mask(*m.shape[-2:], 2, "disk", device=m.device),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_runs_on_the_input_device_and_matches_cpu(device, name):
    maps = torch.rand(2, 3, 12, 11)
    other = (maps + 0.01 * torch.randn_like(maps)).clamp(0, 1)
    fn = FUNCTIONS[name]
    expected = fn(maps, other)
    out = fn(maps.to(device), other.to(device))
    assert out.device.type == torch.device(device).type
    torch.testing.assert_close(out.cpu(), expected, atol=1e-4, rtol=1e-4)
