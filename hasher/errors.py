"""The one error tree of the ``hasher`` package."""

from __future__ import annotations


class HasherError(Exception):
    """Base of every error raised on purpose by ``hasher``."""


class ImageDecodeError(HasherError):
    """The input could not be decoded as an image."""
