"""What the router needs to know about an endpoint: variants, weights and live instances."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class InstanceRoute:
    """One healthy serving instance: port 8080 inside the network namespace of ``netns_pid``."""

    key: str  # unique, e.g. "<endpoint>/<variant>/<n>-<generation>"
    netns_pid: int  # /proc/<pid>/ns/net is the instance's network namespace
    port: int = 8080


@dataclass(frozen=True)
class VariantRoute:
    name: str
    weight: float
    instances: tuple[InstanceRoute, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class EndpointRoute:
    name: str  # endpoint name, lower-cased for lookups by the router's caller
    variants: tuple[VariantRoute, ...]
