"""Instance types → CPU, memory and GPU limits (docs/runtimes.md has the table)."""

from __future__ import annotations

import pytest

from homeport.runtimes.base import Resources
from homeport.runtimes.instance_types import GIB, nominal, resources_for


@pytest.mark.parametrize(
    ("instance_type", "cpus", "memory_gib", "gpus"),
    [
        ("ml.m5.large", 2, 8, 0),
        ("ml.m5.xlarge", 4, 16, 0),
        ("ml.m5.24xlarge", 96, 384, 0),
        ("ml.c5.2xlarge", 8, 16, 0),
        ("ml.r5.large", 2, 16, 0),
        ("ml.t3.medium", 2, 4, 0),
        ("ml.p3.2xlarge", 8, 61, 1),
        ("ml.p3.16xlarge", 64, 488, 8),
        ("ml.g4dn.xlarge", 4, 16, 1),
        ("ml.g5.12xlarge", 48, 192, 4),
        ("ml.p4d.24xlarge", 96, 1152, 8),
    ],
)
def test_published_sizes(instance_type: str, cpus: int, memory_gib: float, gpus: int) -> None:
    assert nominal(instance_type) == Resources(cpus=cpus, memory_bytes=int(memory_gib * GIB), gpus=gpus)


def test_limits_are_capped_to_the_host() -> None:
    assert resources_for("ml.m5.4xlarge", cpus=2, memory=6 * GIB) == Resources(2.0, 6 * GIB, 0)
    assert resources_for("ml.m5.large", cpus=64, memory=512 * GIB) == Resources(2.0, 8 * GIB, 0)


@pytest.mark.parametrize("instance_type", ["local", "local_gpu", "", "ml.m5", "m5.large", "ml.m5.huge"])
def test_types_outside_the_table_get_no_limits(instance_type: str) -> None:
    assert nominal(instance_type) is None
    assert resources_for(instance_type) is None
