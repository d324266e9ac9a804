"""live_restore: real-time restoration of low-dose microscopy frames during acquisition.

Public API::

    from live_restore import LiveRestorer, AcquisitionStore, get_restorer, run_acquisition
"""

from live_restore.acquisition import LiveRestorer, managed_core, resume, run_acquisition
from live_restore.restorer import Restorer, RestoreResult, get_restorer, list_models
from live_restore.store import AcquisitionStore, FrameStatus

__version__ = "0.1.0"

__all__ = [
    "AcquisitionStore",
    "FrameStatus",
    "LiveRestorer",
    "RestoreResult",
    "Restorer",
    "__version__",
    "get_restorer",
    "list_models",
    "managed_core",
    "resume",
    "run_acquisition",
]
