"""``live-restore``: a thin typer app; every verb is a few lines over the library.

Importing the verb modules registers their commands on ``app``; ``--help`` lists them in
this import order."""

from live_restore.cli import acquisition, viewer, models, bench  # noqa: F401, I001  (order matters)
from live_restore.cli.root import app

__all__ = ["app"]
