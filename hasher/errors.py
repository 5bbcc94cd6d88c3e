"""The one error tree of the ``hasher`` package."""

from __future__ import annotations


class HasherError(Exception):
    """Base of every error raised on purpose by ``hasher``."""


class ImageDecodeError(HasherError):
    """The input could not be decoded as an image."""


class ConfigError(HasherError):
    """An ``OscarConfig`` (or a checkpoint's stored config) is invalid or does not match the weights."""


class BackboneWeightsError(HasherError):
    """Backbone or model weights are missing, unreadable, or do not fit the architecture (strict load failed)."""


class WeightsIntegrityError(BackboneWeightsError):
    """A weights file's sha256 differs from the pinned one: it is not the file the code was verified with."""


class SceneGraphError(HasherError):
    """Inputs to the scene-graph builder are inconsistent (mask shape differs from the image, bad image array)."""
