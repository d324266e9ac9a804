"""live_restore: real-time restoration of low-dose microscopy frames during acquisition."""

__version__ = "0.1.0"
