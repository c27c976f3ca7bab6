"""Defect studio: paint a defect onto a normal image in the browser (``syndgan studio``, ``make studio``).

The library half: request validation and mask rasterization (``masks``), the images a request may name
(``images``), synthesis, the quality score and saving as LabelMe (``core``). The web app
that serves ``static/`` and maps HTTP onto ``Studio`` is ``pipeline.tools.studio``.
"""

from syndgan.studio.core import Studio
from syndgan.studio.images import ImageStore
from syndgan.studio.masks import StudioError

__all__ = ["ImageStore", "Studio", "StudioError"]
