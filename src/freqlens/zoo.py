"""The model zoo: trained models shipped with freqlens (public face of :mod:`freqlens.models.zoo`).

``entries()`` lists them (name, architecture, training command, accuracies, sha256, ...), ``entry(name)``
gives one, ``load(name)`` returns the model in float32 and eval mode after checking its weights'
sha256; ``freqlens.models.load("zoo:NAME")`` and ``freqlens ... --checkpoint zoo:NAME`` do the same.
``$FREQLENS_ZOO_DIR`` points at another zoo folder (manifest.json + weights/).
"""

from freqlens.models.zoo import ZOO_DIR_ENV, ZooEntry, entries, entry, load, manifest_path, names, zoo_dir

__all__ = ["ZOO_DIR_ENV", "ZooEntry", "entries", "entry", "load", "manifest_path", "names", "zoo_dir"]
