"""Parsing a sweep's doses and target, and setting the dose on the microscope."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import useq
from pymmcore_plus import CMMCorePlus

DEFAULT_DOSES: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100)
TARGET_METRICS = {"ssim": ">=", "psnr": ">=", "ssim_vs_reference": ">=",
                  "psnr_vs_reference": ">=", "frc_um": "<="}
"""Metrics a target may name, with the direction in which they improve."""
_TARGET_RE = re.compile(r"^\s*([a-z_]+)\s*(>=|<=)\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*$")


# ---------------------------------------------------------------------------------- parsing
def parse_doses(text: str | Sequence[float]) -> tuple[float, ...]:
    """``"1,2,5"`` (or numbers) → sorted unique positive doses; ValueError quoting a bad one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    doses = []
    for item in items:
        try:
            value = float(item)
        except (TypeError, ValueError):
            raise ValueError(f"--doses: {str(item).strip()!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"--doses: every dose must be > 0, got {str(item).strip()!r}")
        doses.append(value)
    if not doses:
        raise ValueError(f"--doses: no dose given in {text!r}")
    return tuple(sorted(set(doses)))


@dataclass(frozen=True)
class Target:
    """A quality target: ``metric op value`` on the mean of the restored frames at a dose."""

    metric: str
    op: str
    value: float
    source: str = "user"
    """``user``, or what the default was measured on."""

    def met(self, x: float | None) -> bool:
        if x is None or not math.isfinite(x):
            return False
        return x >= self.value if self.op == ">=" else x <= self.value

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:.4g}"


def parse_target(text: str) -> Target:
    """``"ssim>=0.90"`` / ``"psnr>=30"`` / ``"frc_um<=0.08"`` → :class:`Target`."""
    m = _TARGET_RE.match(text.lower())
    if m is None:
        raise ValueError(f"--target: expected METRIC>=VALUE or METRIC<=VALUE, got {text!r}")
    metric, op, value = m.group(1), m.group(2), float(m.group(3))
    if metric not in TARGET_METRICS:
        raise ValueError(f"--target: unknown metric {metric!r} in {text!r}; "
                         f"known: {', '.join(TARGET_METRICS)}")
    if op != TARGET_METRICS[metric]:
        raise ValueError(f"--target: {metric} improves as it goes {TARGET_METRICS[metric][0]}, "
                         f"so use {metric}{TARGET_METRICS[metric]}…, got {text!r}")
    return Target(metric, op, value)


# ----------------------------------------------------------------------------- dose control
@dataclass(frozen=True)
class DoseControl:
    """How a dose reaches the hardware: one numeric property, or the presets of a group.

    For a group, each preset's dose is the value of its one numeric setting (the simulator's
    ``Dose`` group: Low/Medium/High = LaserPower 5/20/80 %), so doses stay numbers.
    """

    device: str
    prop: str
    group: str | None = None
    presets: Mapping[float, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.group or f"{self.device}-{self.prop}"

    def setup_event(self, dose: float) -> useq.MDAEvent:
        """The setup event that puts ``dose`` on the hardware before a sequence's first frame."""
        if self.group is None:
            return useq.MDAEvent(properties=[(self.device, self.prop, dose)])
        if dose not in self.presets:
            raise ValueError(f"dose {dose:g} is not a preset of group {self.group!r}; presets: "
                             + ", ".join(f"{v:g} ({k})" for k, v in self._by_name().items()))
        return useq.MDAEvent(channel={"group": self.group, "config": self.presets[dose]})

    def _by_name(self) -> dict[str, float]:
        return {name: dose for dose, name in sorted(self.presets.items())}

    def check(self, core: CMMCorePlus, doses: Sequence[float]) -> None:
        """Refuse doses the hardware cannot take (the engine would only log a warning)."""
        if self.group is not None:
            for dose in doses:
                self.setup_event(dose)
            return
        if core.hasPropertyLimits(self.device, self.prop):
            lo = core.getPropertyLowerLimit(self.device, self.prop)
            hi = core.getPropertyUpperLimit(self.device, self.prop)
            bad = [d for d in doses if not lo <= d <= hi]
            if bad:
                raise ValueError(f"dose(s) {', '.join(f'{d:g}' for d in bad)} outside the limits "
                                 f"[{lo:g}, {hi:g}] of {self.name!r}")


def dose_control(core: CMMCorePlus, name: str | None = None) -> DoseControl:
    """Resolve ``"Device-Property"`` or a config group name; ``None`` looks for a default.

    The default is the camera's ``LaserPower`` property (the simulator), else a ``Dose`` group.
    """
    if name is None:
        camera = core.getCameraDevice()
        if camera and core.hasProperty(camera, "LaserPower"):
            name = f"{camera}-LaserPower"
        elif core.isGroupDefined("Dose"):
            name = "Dose"
        else:
            raise ValueError(
                "this configuration has no dose control: the camera has no 'LaserPower' property "
                "and there is no 'Dose' config group; name one with --dose-property "
                "(e.g. 'Laser-Power' or a config group whose presets set the power)"
            )
    if core.isGroupDefined(name):
        return _group_control(core, name)
    for i in [i for i, ch in enumerate(name) if ch == "-"]:
        device, prop = name[:i], name[i + 1:]
        if device in core.getLoadedDevices() and core.hasProperty(device, prop):
            if core.isPropertyReadOnly(device, prop):
                raise ValueError(f"dose property {name!r} is read-only")
            return DoseControl(device, prop)
    groups = ", ".join(core.getAvailableConfigGroups()) or "none"
    raise ValueError(
        f"unknown dose property or config group {name!r}: expected 'Device-Property' of a loaded "
        f"device or a config group (groups: {groups})"
    )


def _group_control(core: CMMCorePlus, group: str) -> DoseControl:
    presets: dict[float, str] = {}
    device = prop = ""
    for preset in core.getAvailableConfigs(group):
        settings = [s for s in core.getConfigData(group, preset) if _is_number(s[2])]
        if len(settings) != 1:
            raise ValueError(f"preset {preset!r} of dose group {group!r} must set exactly one "
                             f"numeric property, found {len(settings)}")
        device, prop, value = settings[0]
        presets[float(value)] = preset
    if not presets:
        raise ValueError(f"dose group {group!r} has no presets")
    return DoseControl(device, prop, group, presets)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
