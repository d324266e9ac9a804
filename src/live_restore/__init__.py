"""live_restore: real-time restoration of low-dose microscopy frames during acquisition.

Public API (imported lazily, so ``import live_restore.sim`` does not load pymmcore-plus)::

    from live_restore import LiveRestorer, AcquisitionStore, get_restorer, run_acquisition
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AcquisitionStore": "live_restore.acquisition.store",
    "FrameStatus": "live_restore.acquisition.store",
    "LiveRestorer": "live_restore.acquisition.hook",
    "LiveView": "live_restore.acquisition.liveview",
    "RestoreResult": "live_restore.models.restorer",
    "Restorer": "live_restore.models.restorer",
    "get_restorer": "live_restore.models.restorer",
    "list_models": "live_restore.models.restorer",
    "managed_core": "live_restore.acquisition.core",
    "resume": "live_restore.acquisition.run",
    "run_acquisition": "live_restore.acquisition.run",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'live_restore' has no attribute {name!r}")
