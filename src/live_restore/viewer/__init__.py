"""Watching restoration live: raw, restored and uncertainty side by side (the ``viewer`` extra).

:class:`RestoreWindow` follows any store (ndv panels with linked sliders and the ledger's word on
each frame); :func:`run_with_viewer` runs an acquisition beside it (``--view``) and
:func:`view_store` opens a store (``live-restore view``); :func:`run_app` is a small
Micro-Manager app (MDA widget, restoration dock, viewer: ``live-restore gui``). The core
package never imports this.
"""

from live_restore.viewer.app import check_display, run_app, run_with_viewer, view_store

__all__ = ["check_display", "run_app", "run_with_viewer", "view_store"]
