"""freqlens.spectral: pure tensor maths on maps and images (see DESIGN.md, "Fourier", "FORGrad
low-pass", "High-frequency measures", "DCT", "RCT").

Everything works on the last two dims of tensors with any leading dims, follows the input's device
and is differentiable where natural. Nothing here imports the rest of freqlens.
"""

from .cutoff import lowpass_each, noise_floor_sigma, ring_profile
from .dct import band_mask, dct2, dct_bands, dct_matrix, idct2
from .filtering import SHAPES, lowpass, lowpass_mask, nyquist_sigma
from .fourier import frequency_offsets, frequency_radius, num_radial_bins, power_spectrum, radial_profile
from .measures import PNG_COMPRESS_LEVEL, compression_ratio, hf_power_ratio, laplacian_energy, quantize_uint8
from .relative_change import rct

__all__ = [
    "PNG_COMPRESS_LEVEL",
    "SHAPES",
    "band_mask",
    "compression_ratio",
    "dct2",
    "dct_bands",
    "dct_matrix",
    "frequency_offsets",
    "frequency_radius",
    "hf_power_ratio",
    "idct2",
    "laplacian_energy",
    "lowpass",
    "lowpass_each",
    "lowpass_mask",
    "noise_floor_sigma",
    "num_radial_bins",
    "nyquist_sigma",
    "power_spectrum",
    "quantize_uint8",
    "radial_profile",
    "rct",
    "ring_profile",
]
