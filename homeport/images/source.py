"""Where a job's or endpoint's image reference is resolved: the local registry or an engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from homeport.images import registry
from homeport.images.model import EngineImage, Image, LocalImage


class ImageSource(Protocol):
    def resolve(self, reference: str) -> Image:
        """The image a reference names; ImageNotFound (naming it) when there is none."""


@contextmanager
def hold(image: Image) -> Iterator[Image]:
    """Keep the image's files while the block runs.

    A local image's root is protected by the registry's shared lock. An engine image needs
    nothing: containers are created from the image ID, and engines refuse to delete an image
    that a container still uses.
    """
    if isinstance(image, LocalImage):
        with registry.hold(image):
            yield image
    else:
        assert isinstance(image, EngineImage)
        yield image
