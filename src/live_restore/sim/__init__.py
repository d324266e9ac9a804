"""Microscope simulator: specimens, confocal/STED optics, detectors, paired datasets.

The simulator never imports pymmcore-plus; ``live_restore.sim.devices`` wraps
:class:`~live_restore.sim.microscope.Microscope` as Micro-Manager devices.
"""

from live_restore.sim.microscope import (
    MODALITIES,
    Microscope,
    expected_photons,
    frame_truth,
    ground_truth,
    structure,
)
from live_restore.sim.specimens import SPECIMENS
from live_restore.sim.tasks import TASKS, check_task, make_pair, make_pairs, write_dataset

__all__ = [
    "MODALITIES",
    "SPECIMENS",
    "TASKS",
    "Microscope",
    "check_task",
    "expected_photons",
    "frame_truth",
    "ground_truth",
    "make_pair",
    "make_pairs",
    "structure",
    "write_dataset",
]
