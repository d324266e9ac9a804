"""Train CAREamics N2V2 networks and restore frames with them; run by the peer environment.

CAREamics pins a torch/torchvision pair that cannot share the package's environment, so
:mod:`live_restore.experiments.peers` runs this file as a script with the peer environment's
interpreter. It imports nothing from ``live_restore`` (the package is not installed there):
numpy arrays and one JSON file go in, predictions and a JSON report come out.

Usage: ``python n2v2_job.py JOB_DIR``, where ``JOB_DIR/job.json`` holds::

    {"groups": [{"name": ..., "frames": "frames_0.npy",
                 "restore": [{"name": ..., "input": "input_0_0.npy",
                              "prediction": "prediction_0_0.npy"}]}],
     "cpu_seconds_per_group": 600, "seed": 0, "threads": 1,
     "patch_size": 64, "batch_size": 16}

One network per group is trained on ``frames_g.npy`` (float32 ``(T, Y, X)``: every noisy
frame of the group) and restores each ``input`` (float32 ``(Y, X)``) into ``prediction`` (the
input's units). ``JOB_DIR/result.json`` holds the versions and, per restored frame, its
group's optimiser steps and training CPU seconds and the prediction's ms. Everything else is
CAREamics' N2V2 default (UNet, masking, Adam, mean/std normalisation, augmentations,
validation patches); CAREamics requires a batch size and the benchmark passes the ``n2v``
package's default, 16. Data loading stays in-process (``num_workers=0``) so the CPU budget
measures the whole training.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _cpu_budget_callback(seconds: float) -> Any:
    """A Lightning callback that stops training once this process has used ``seconds`` of CPU."""
    from lightning.pytorch.callbacks import Callback

    class CpuBudget(Callback):
        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.start = time.process_time()

        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if time.process_time() - self.start >= seconds:
                trainer.should_stop = True

    return CpuBudget()


def _run_group(job: dict, group: dict, job_dir: Path, work_dir: Path) -> dict:
    from careamics import CAREamist
    from careamics.config.factories.n2v_factory import create_advanced_n2v_config

    frames = np.load(job_dir / group["frames"]).astype(np.float32)
    patch = int(job["patch_size"])
    config = create_advanced_n2v_config(
        experiment_name="n2v2_bench",
        data_type="array",
        axes="SYX",
        patch_size=[patch, patch],
        batch_size=int(job["batch_size"]),
        num_epochs=1_000_000,  # the CPU budget ends training
        use_n2v2=True,
        num_workers=0,
        seed=int(job["seed"]),
        trainer_params={"accelerator": "cpu", "devices": 1, "enable_model_summary": False},
    )
    careamist = CAREamist(
        config,
        work_dir=work_dir,
        callbacks=[_cpu_budget_callback(float(job["cpu_seconds_per_group"]))],
        enable_progress_bar=False,
    )
    cpu0 = time.process_time()
    careamist.train(train_data=frames)
    trained = {"steps": int(careamist.trainer.global_step),
               "train_cpu_s": time.process_time() - cpu0}
    out = {}
    for k, entry in enumerate(group["restore"]):
        frame = np.load(job_dir / entry["input"]).astype(np.float32)
        if k == 0:
            careamist.predict(frame, axes="YX", data_type="array")  # warm-up
        t0 = time.perf_counter()
        predictions, _ = careamist.predict(frame, axes="YX", data_type="array")
        ms = 1000.0 * (time.perf_counter() - t0)
        prediction = np.asarray(predictions[0], dtype=np.float32).reshape(frame.shape)
        np.save(job_dir / entry["prediction"], prediction)
        out[entry["name"]] = trained | {"ms_per_frame": ms}
    return out


def main(job_dir: Path) -> None:
    import careamics
    import torch

    job = json.loads((job_dir / "job.json").read_text())
    torch.set_num_threads(int(job["threads"]))
    fields = {}
    with tempfile.TemporaryDirectory() as work:
        for i, group in enumerate(job["groups"]):
            fields |= _run_group(job, group, job_dir, Path(work) / str(i))
    result = {
        "versions": {
            "careamics": careamics.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "fields": fields,
    }
    (job_dir / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python n2v2_job.py JOB_DIR")
    main(Path(sys.argv[1]))
