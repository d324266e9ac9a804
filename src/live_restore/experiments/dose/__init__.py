"""Reduced-light-dose calibration: how far can the dose drop before restoration stops paying?

A sweep acquires ``K`` frames at each dose through the ordinary live pipeline
(:func:`~live_restore.acquisition.run.run_acquisition`: raw first, restored beside it) and scores
raw and restored frames against a reference. The answer it gives is a *recommended dose*: the
lowest dose whose restored frames still meet a quality target, by default the quality of raw
frames at the reference (highest) dose, and a useq sequence that acquires at that dose.

Design decisions, each for a reason:

- **The dose is set by the sequence's setup event.** ``MDASequence.setup`` is applied by the
  pymmcore-plus engine before the first event, and it is saved with the sequence JSON, so the
  recommended sequence carries its dose to ``live-restore acquire``. A dose is a device
  property (``"SimCam-LaserPower"``: ``properties=[(device, prop, value)]``) or a preset of a
  config group (``"Dose"``: the setup event's ``channel``). The engine only logs a failed
  setter, so the control is checked here, before any light reaches the sample.
- **Fresh fields for every dose** (``F`` per dose, ``K`` frames each). Bleaching would
  otherwise bias the comparison (the frames taken later see fewer labels). Fields sit on a
  grid ``1.5`` field widths apart, so scan overshoot does not pre-bleach a neighbour: one
  column per dose (the first at the start position's x), one row per field, a block of rows
  per arm, the whole grid centred vertically on the start position. Each dose's store is
  ``OUTPUT/<arm>/dose_<d>.ome.zarr``. Field content moves SSIM by about ±0.01–0.02 on the
  simulator, as much as a dose step, so more fields per dose make the recommendation sturdier.
- **A reference frame on every field.** After all doses, one frame at the reference dose is
  taken on each field (``OUTPUT/<arm>/reference.ome.zarr``, stored raw only). Comparing with a
  high-dose frame needs the same field, and on real hardware that frame is the only reference.
  The low-dose frames before it bleach little (≤ 1 % on the simulator at 50 % and K = 2).
- **The primary basis is the simulator's noise-free truth** when every frame carries one
  (``ssim``, ``psnr``); the ``*_vs_reference`` metrics use the reference frame and exist on
  hardware too. A restorer that changes modality (``confocal2sted``) is scored against the
  truth of its target modality, which the reference frame (taken in that modality) records.
- **The default target is "as good as raw at the reference dose"**: ``ssim >=`` the mean SSIM
  of the reference frames against their truth (simulator), or of raw frames at the reference
  dose against the reference frame (hardware). Field content differs between doses, so the
  recommendation is the lowest dose from which *every* higher dose meets the target.
- **A strip field** (the row after each arm's test fields) sees every dose in ascending
  order (K frames each), so the image strip shows the same detail at each dose. It is for
  display and for checking that the dose changes the signal; it accumulates bleaching, so it
  is never scored.
"""
from live_restore.experiments.dose.control import (
    DEFAULT_DOSES,
    TARGET_METRICS,
    DoseControl,
    Target,
    dose_control,
    parse_doses,
    parse_target,
)
from live_restore.experiments.dose.figures import plot_strip, plot_sweep
from live_restore.experiments.dose.report import DoseSweepReport, SweepArm
from live_restore.experiments.dose.scoring import recommend
from live_restore.experiments.dose.sweep import (
    FIELD_STEP,
    MODALITY_MODELS,
    TRANSFER_MODEL,
    recommended_sequence,
    run_dose_sweep,
)

__all__ = [
    "DEFAULT_DOSES",
    "FIELD_STEP",
    "MODALITY_MODELS",
    "TARGET_METRICS",
    "TRANSFER_MODEL",
    "DoseControl",
    "DoseSweepReport",
    "SweepArm",
    "Target",
    "dose_control",
    "parse_doses",
    "parse_target",
    "plot_strip",
    "plot_sweep",
    "recommend",
    "recommended_sequence",
    "run_dose_sweep",
]
