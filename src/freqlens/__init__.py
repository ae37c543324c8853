"""freqlens: frequency-aware explanation of image classifiers.

Subpackages (see ``DESIGN.md``): ``spectral`` (pure tensor maths), ``attribution``, ``metrics``,
``attacks``, ``training``, ``analysis``, ``models``, ``data``, ``studies``, ``report``; the command line
is ``freqlens`` (:mod:`freqlens.cli`).

Progress: every function that does long work takes ``progress: bool = False`` (tqdm bars on stderr, never
stdout); the library is silent by default and the ``freqlens`` commands turn the bars on unless ``--quiet``.
"""

__version__ = "0.1.0"

from freqlens.utils.tensors import current_pixel_range, pixel_range, set_pixel_range

__all__ = ["__version__", "current_pixel_range", "pixel_range", "set_pixel_range"]
