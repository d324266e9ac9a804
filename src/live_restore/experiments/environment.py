"""The machine and software a benchmark ran on, recorded in its JSON.

Why shared: a timing or a score means little without the machine and the library versions
that produced it, and every benchmark should write them under the same keys so the JSONs can
be compared. Standard library only, so a benchmark that times start-up does not load what it
measures just to describe the machine.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from live_restore import __version__

__all__ = ["DEFAULT_PACKAGES", "machine", "software_versions"]

#: The distributions whose versions move the numbers of most benchmarks.
DEFAULT_PACKAGES = ("torch", "numpy", "scipy", "scikit-image", "tifffile")


def machine() -> dict[str, object]:
    """Platform, processor architecture and CPU count of this machine."""
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def software_versions(packages: Sequence[str] = DEFAULT_PACKAGES) -> dict[str, str]:
    """live_restore's and Python's versions, and each installed distribution's in
    ``packages`` ("not installed" where it is missing), read from metadata without importing
    the packages."""
    out = {"live_restore": __version__, "python": platform.python_version()}
    for package in packages:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out
