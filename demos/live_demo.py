"""Restore a low-dose time-lapse live on the simulated confocal/STED microscope.

The same steps as ``live-restore demo``, through the public API, to start your own script
from: load a config, attach a LiveRestorer, run a useq sequence, look at what came out.

    python demos/live_demo.py [OUTPUT.zarr]
"""

import sys

import useq

from live_restore import AcquisitionStore, FrameStatus, get_restorer, managed_core, run_acquisition
from live_restore.experiments.demo import default_config

output = sys.argv[1] if len(sys.argv) > 1 else "live_demo.ome.zarr"
sequence = useq.MDASequence(
    channels=[{"group": "Modality", "config": "Confocal"}, {"group": "Modality", "config": "STED"}],
    time_plan={"interval": 0, "loops": 5},
)
restorer = get_restorer("classical")

with managed_core(default_config()) as core:
    core.setConfig("Dose", "Low")  # low laser power: the reason to restore
    core.setROI(128, 128, 256, 256)
    report = run_acquisition(core, sequence, output, restorer, overwrite=True)

print(f"{report.raw_frames_written} raw frames, {report.restored} restored, "
      f"{report.acquisition_fps:.1f} frames/s, latency p50 {report.latency_ms_p50:.0f} ms")
with AcquisitionStore.open(output, mode="r") as store:
    last = store.indices(FrameStatus.RESTORED)[-1]
    print("last restored frame", last, store.read_restored(last).shape)
