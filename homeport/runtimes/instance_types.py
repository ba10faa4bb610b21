"""What an ML instance type means on this machine: CPUs, memory and GPUs for a container.

The table follows the sizes AWS publishes (docs/runtimes.md lists it): a type is
``ml.<family>.<size>``; the size gives the vCPUs (``large`` 2, ``xlarge`` 4, ``Nxlarge``
4·N, ``medium`` 2), the family the memory per vCPU, and GPU families (``p*``, ``g*``) a GPU
count from the table below (1 when the size is not listed). Limits never exceed the host:
a request for more CPUs or memory than the machine has gets what the machine has.
"""

from __future__ import annotations

import os
import re

from homeport.runtimes.base import Resources

GIB = 1024**3

# GiB of memory per vCPU, by instance family (the letters and generation before the dot).
MEMORY_PER_VCPU: dict[str, float] = {
    "t2": 4,
    "t3": 4,
    "m4": 4,
    "m5": 4,
    "m5d": 4,
    "m6i": 4,
    "m6g": 4,
    "m7i": 4,
    "c4": 1.875,
    "c5": 2,
    "c5d": 2,
    "c5n": 2.625,
    "c6i": 2,
    "c7i": 2,
    "r5": 8,
    "r5d": 8,
    "r6i": 8,
    "r7i": 8,
    "x1": 15.25,
    "z1d": 8,
    "p2": 15.25,
    "p3": 7.625,
    "p3dn": 8,
    "p4d": 12,
    "p4de": 12,
    "p5": 21.33,
    "g4dn": 4,
    "g5": 4,
    "g6": 4,
    "g6e": 8,
    "inf1": 2,
    "inf2": 4,
    "trn1": 4,
}
DEFAULT_MEMORY_PER_VCPU = 4.0

# GPUs per instance type, where the family has GPUs and the size is not 1.
GPUS: dict[str, int] = {
    "ml.p2.8xlarge": 8,
    "ml.p2.16xlarge": 16,
    "ml.p3.8xlarge": 4,
    "ml.p3.16xlarge": 8,
    "ml.p3dn.24xlarge": 8,
    "ml.p4d.24xlarge": 8,
    "ml.p4de.24xlarge": 8,
    "ml.p5.48xlarge": 8,
    "ml.g4dn.12xlarge": 4,
    "ml.g5.12xlarge": 4,
    "ml.g5.24xlarge": 4,
    "ml.g5.48xlarge": 8,
    "ml.g6.12xlarge": 4,
    "ml.g6.24xlarge": 4,
    "ml.g6.48xlarge": 8,
    "ml.g6e.12xlarge": 4,
    "ml.g6e.24xlarge": 4,
    "ml.g6e.48xlarge": 8,
}

_TYPE = re.compile(r"ml\.([a-z]+[0-9]+[a-z]*)\.([0-9]*)(xlarge|large|medium|small|micro|nano|metal)")
_SMALL_SIZES = {"large": 2, "medium": 2, "small": 1, "micro": 1, "nano": 1}


def is_gpu_family(family: str) -> bool:
    return family.startswith(("p", "g"))


def nominal(instance_type: str) -> Resources | None:
    """The instance type's own CPUs, memory and GPUs; None for a type this table cannot read."""
    match = _TYPE.fullmatch(instance_type)
    if match is None:
        return None
    family, multiple, size = match.groups()
    if size == "xlarge":
        vcpus = 4 * (int(multiple) if multiple else 1)
    elif size == "metal":
        vcpus = 96
    else:
        vcpus = _SMALL_SIZES[size]
    memory = vcpus * MEMORY_PER_VCPU.get(family, DEFAULT_MEMORY_PER_VCPU)
    if instance_type.startswith("ml.t") and size == "medium":
        memory = 4
    gpus = GPUS.get(instance_type, 1) if is_gpu_family(family) else 0
    return Resources(cpus=float(vcpus), memory_bytes=int(memory * GIB), gpus=gpus)


def host_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def host_cpus() -> int:
    return len(os.sched_getaffinity(0))


def resources_for(instance_type: str, cpus: int | None = None, memory: int | None = None) -> Resources | None:
    """The limits a container of this instance type gets here: nominal, capped to the host."""
    wanted = nominal(instance_type)
    if wanted is None:
        return None
    cpus = host_cpus() if cpus is None else cpus
    memory = host_memory_bytes() if memory is None else memory
    return Resources(
        cpus=min(wanted.cpus, float(cpus)), memory_bytes=min(wanted.memory_bytes, memory), gpus=wanted.gpus
    )
