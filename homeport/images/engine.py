"""Images held by a Docker-compatible engine (Docker Engine, or Podman's compat service).

References resolve the way the local registry resolves them: the reference as written first
(``my-image:1``, ``localhost/my-image``, ``name@sha256:...``), then without a registry host,
so the ECR URIs the SageMaker SDK produces (``123456789012.dkr.ecr.<region>.amazonaws.com/
my-image:1``) find an image built locally as ``my-image:1``. Nothing is ever pulled: no
registry may be reachable, and a silent pull would hide a typo for minutes.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors

from homeport.errors import ImageNotFound, ValidationException
from homeport.images.model import EngineImage
from homeport.images.registry import candidate_names, split_reference

BUILD_FILES = ("Dockerfile", "Containerfile")


class BuildFailed(Exception):
    """The engine refused or failed the build; the message is the engine's."""


def _created(attrs: dict[str, Any]) -> float:
    value = attrs.get("Created")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        # RFC 3339 with up to nanoseconds; Python parses microseconds.
        text = value.rstrip("Z")
        head, dot, frac = text.partition(".")
        try:
            parsed = datetime.datetime.fromisoformat(head + (dot + frac[:6] if dot else ""))
        except ValueError:
            return 0.0
        return parsed.replace(tzinfo=datetime.UTC).timestamp()
    return 0.0


class EngineImages:
    """Resolves and builds images through the engine's API."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    def resolve(self, reference: str) -> EngineImage:
        ref = reference.strip()
        name, tag = split_reference(ref)
        tries = [(ref, name)] if "@" in ref else []
        tries += [(f"{candidate}:{tag}", candidate) for candidate in candidate_names(name)]
        for attempt, found in dict.fromkeys(tries):
            try:
                image = self.client.images.get(attempt)
            except docker.errors.ImageNotFound:
                continue
            except docker.errors.APIError as exc:
                if "reference" in str(exc).lower():
                    continue  # not a valid reference for this engine: try the next spelling
                raise
            return EngineImage(name=found, tag=tag, id=str(image.id), created=_created(image.attrs))
        names = candidate_names(name)
        tried = " or ".join(f"'{n}:{tag}'" for n in names)
        raise ImageNotFound(
            f"Image '{reference}' is not available: the container engine has no image named {tried} "
            f"(build one with: homeport image build CONTEXT -t {names[-1]}:{tag}; Homeport never pulls "
            "from a registry)"
        )

    def build(
        self,
        context: Path,
        tag: str,
        dockerfile: str | None = None,
        on_line: Callable[[str], None] | None = None,
        network_mode: str | None = None,
    ) -> EngineImage:
        """``docker build CONTEXT -t TAG`` (Dockerfile, else Containerfile) without pulling.

        ``network_mode="host"`` lets RUN steps reach the host's network (pip, for built-ins).
        """
        context = Path(context)
        if not context.is_dir():
            raise ValidationException(f"Invalid build context {str(context)!r}: not a folder")
        if dockerfile is None:
            dockerfile = next((f for f in BUILD_FILES if (context / f).is_file()), None)
            if dockerfile is None:
                raise ValidationException(
                    f"Invalid build context {str(context)!r}: it has neither a Dockerfile nor a Containerfile"
                )
        elif not (context / dockerfile).is_file():
            raise ValidationException(f"Invalid build file {dockerfile!r}: not found in {context}")
        image_id: str | None = None
        try:
            for event in self.client.api.build(
                path=str(context),
                tag=tag,
                dockerfile=dockerfile,
                rm=True,
                pull=False,
                decode=True,
                network_mode=network_mode,
            ):
                if "error" in event:
                    raise BuildFailed(str(event["error"]).strip())
                aux = event.get("aux")
                if isinstance(aux, dict) and aux.get("ID"):
                    image_id = str(aux["ID"])
                text = event.get("stream")
                if text and on_line is not None:
                    for line in str(text).splitlines():
                        on_line(line)
        except docker.errors.APIError as exc:
            raise BuildFailed(exc.explanation or str(exc)) from exc
        image = self.resolve(tag)
        if image_id is not None and image.id != image_id and not image.id.endswith(image_id):
            raise BuildFailed(f"the engine built {image_id} but {tag} names {image.id}")
        return image
