"""``live-restore bench startup``: how long the command line takes to start, in fresh processes.

Why: a microscopist who types ``live-restore --help`` or restores one file waits for the
interpreter and every library it loads before anything happens. The CLI therefore loads
torch, pymmcore-plus, zarr and scipy only inside the verbs that use them; this benchmark keeps
that honest against issue #23's targets (``--help`` ≤ 1 s, the first frame of ``restore``
≤ 3 s).

Cases, each a fresh process timed from just before it is spawned until it exits (wall clock,
so the interpreter's own start-up counts):

- ``help``: ``live-restore --help``;
- ``import``: ``python -c "import live_restore"`` (the package root, no target of its own);
- ``restore``: ``live-restore restore IN.tif OUT.tif --model classical`` on one generated
  64×64 uint16 frame: the start-up before a restore's first frame, plus that frame.

Every case runs once untimed (disk caches, bytecode), then ``repeats`` times, the cases
interleaved so machine noise hits them alike; a target is met when the median is within it.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from live_restore.experiments.environment import machine, software_versions

__all__ = ["HEAVY_MODULES", "STARTUP_REPEATS", "STARTUP_TARGETS_S", "bench_startup"]

STARTUP_REPEATS = 5
#: Seconds each case's median must stay within (issue #23); None: reported, no target.
STARTUP_TARGETS_S: dict[str, float | None] = {"help": 1.0, "import": None, "restore": 3.0}
#: Libraries that importing the CLI must not load: each costs seconds (torch most).
HEAVY_MODULES = ("torch", "pymmcore_plus", "zarr", "scipy")
FRAME_SHAPE = (1, 64, 64)
#: Packages whose versions move start-up time: the CLI's own and the heavy ones it defers.
PACKAGES = ("typer", "rich", "numpy", "tifffile", "torch", "pymmcore-plus", "zarr", "scipy")
RUN_TIMEOUT_S = 300.0


def entry_point() -> Path:
    """The installed ``live-restore`` console script: beside this interpreter (a venv need not
    be on PATH), else on PATH. Raises ``RuntimeError`` when it is not installed."""
    beside = Path(sys.executable).parent / "live-restore"
    found = beside if beside.exists() else shutil.which("live-restore")
    if found is None:
        raise RuntimeError("the live-restore console script is not installed "
                           "(pip install -e . in this environment)")
    return Path(found)


def heavy_modules_at_cli_import() -> list[str]:
    """Which of :data:`HEAVY_MODULES` a fresh interpreter holds after importing the CLI."""
    code = ("import sys, live_restore.cli; "
            f"print(' '.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"importing live_restore.cli failed: {done.stderr.strip()[-500:]}")
    return done.stdout.split()


def _timed(argv: Sequence[str]) -> float:
    """Seconds from spawning ``argv`` until it exits; ``RuntimeError`` (with the end of its
    stderr) when it fails, since a crash that exits fast is not a fast start."""
    t0 = time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: "
                           f"{done.stderr.strip()[-500:]}")
    return seconds


def _load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): on a shared machine, other
    work stretches every start-up, so the JSON says how busy the machine was."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _write_frame(path: Path) -> None:
    """One 64×64 uint16 frame of Poisson counts, the smallest input ``restore`` takes."""
    import numpy as np
    import tifffile

    tifffile.imwrite(path, np.random.default_rng(0).poisson(20, FRAME_SHAPE).astype(np.uint16))


def bench_startup(repeats: int = STARTUP_REPEATS,
                  say: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Time every case (module docstring) ``repeats`` times; return the JSON-able result.
    ``say`` receives progress lines."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    exe = str(entry_point())
    load_before = _load_average()
    with tempfile.TemporaryDirectory(prefix="live-restore-startup-") as tmp:
        frame = Path(tmp) / "in.tif"
        _write_frame(frame)
        outputs = iter(Path(tmp) / f"out{i}.tif" for i in range(repeats + 1))
        cases: dict[str, tuple[str, Callable[[], list[str]]]] = {
            "help": ("live-restore --help", lambda: [exe, "--help"]),
            "import": ('python -c "import live_restore"',
                       lambda: [sys.executable, "-c", "import live_restore"]),
            "restore": ("live-restore restore IN.tif OUT.tif --model classical",
                        lambda: [exe, "restore", str(frame), str(next(outputs)),
                                 "--model", "classical"]),
        }
        for _, argv in cases.values():
            _timed(argv())
        runs: dict[str, list[float]] = {name: [] for name in cases}
        for i in range(repeats):
            for name, (_, argv) in cases.items():
                runs[name].append(_timed(argv()))
            say(f"run {i + 1}/{repeats}: " + ", ".join(f"{n} {s[-1]:.2f} s"
                                                       for n, s in runs.items()))
    results = {}
    for name, (command, _) in cases.items():
        median, target = statistics.median(runs[name]), STARTUP_TARGETS_S[name]
        results[name] = {"command": command, "seconds": runs[name], "median_s": median,
                         "min_s": min(runs[name]), "target_s": target,
                         "met": None if target is None else median <= target}
    return {
        "benchmark": "startup",
        "repeats": repeats,
        "warmup_runs": 1,
        "input": f"{FRAME_SHAPE[0]} frame of {FRAME_SHAPE[1]}×{FRAME_SHAPE[2]} uint16 (TIFF)",
        "cases": results,
        "targets_met": all(r["met"] for r in results.values() if r["met"] is not None),
        "load_average_1m": {"before": load_before, "after": _load_average()},
        "heavy_modules_at_cli_import": heavy_modules_at_cli_import(),
        "machine": machine(),
        "software": software_versions(PACKAGES),
    }
