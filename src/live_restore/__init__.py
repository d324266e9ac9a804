"""live_restore: real-time restoration of low-dose microscopy frames during acquisition.

Public API (imported lazily, so ``import live_restore.sim`` does not load pymmcore-plus)::

    from live_restore import LiveRestorer, AcquisitionStore, get_restorer, run_acquisition
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as type checkers see them (``X as X``: re-exported)
    from live_restore.acquisition.core import managed_core as managed_core
    from live_restore.acquisition.hook import LiveRestorer as LiveRestorer
    from live_restore.acquisition.liveview import LiveView as LiveView
    from live_restore.acquisition.run import resume as resume
    from live_restore.acquisition.run import run_acquisition as run_acquisition
    from live_restore.acquisition.store import AcquisitionStore as AcquisitionStore
    from live_restore.acquisition.store import FrameStatus as FrameStatus
    from live_restore.models.restorer import Restorer as Restorer
    from live_restore.models.restorer import RestoreResult as RestoreResult
    from live_restore.models.restorer import get_restorer as get_restorer
    from live_restore.models.restorer import list_models as list_models

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
    """Import a public name's module on first use (PEP 562): the package root then loads
    neither torch nor pymmcore-plus, so ``import live_restore`` and the CLI start fast."""
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'live_restore' has no attribute {name!r}")
