"""What the router needs to know about an endpoint: variants, weights and live instances."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class InstanceRoute:
    """One healthy serving instance: ``host:port`` inside the network namespace of ``netns_pid``
    (0: in the server's own namespace, for a port published by a container engine)."""

    key: str  # unique, e.g. "<endpoint>/<variant>/<n>-<generation>"
    netns_pid: int  # /proc/<pid>/ns/net is the instance's network namespace
    port: int = 8080
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class VariantRoute:
    name: str
    weight: float
    instances: tuple[InstanceRoute, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class EndpointRoute:
    name: str  # endpoint name, lower-cased for lookups by the router's caller
    variants: tuple[VariantRoute, ...]
