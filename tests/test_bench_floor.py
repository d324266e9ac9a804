"""``bench floor`` on two tiny real-data-like fields: truth, estimate and the counts agree."""

from __future__ import annotations

import numpy as np
import pytest

from live_restore.experiments import bench_floor as bench_floor_module
from live_restore.experiments.bench_floor import bench_floor
from live_restore.models.restorer import RestoreResult
from test_bench_real import _write_field


class _Blurless:
    """Gives the raw frame back, as a restorer that learned nothing would."""

    name, version = "identity", "test"

    def restore(self, batch, *, samples=1, seed=None):
        frames = np.asarray(batch, dtype=np.float32)
        return RestoreResult(mean=frames[None] if frames.ndim == 2 else frames)


def test_bench_floor_counts_what_the_check_sees(tmp_path, monkeypatch):
    _write_field(tmp_path / "confocal_bpae_nuclei" / "fov02", seed=0, frames=3, size=96)
    _write_field(tmp_path / "confocal_bpae_nuclei" / "fov11", seed=1, frames=2, size=96)
    _write_field(tmp_path / "confocal_mouse_brain", seed=2, frames=1, size=96)  # not judged
    monkeypatch.setattr(bench_floor_module, "get_restorer", lambda name, device=None: _Blurless())
    result = bench_floor(tmp_path, ("identity",), command="test")
    row = result["restorers"]["identity"]
    assert set(row["fields"]) == {"confocal_bpae_nuclei/fov02", "confocal_bpae_nuclei/fov11"}
    for field in row["fields"].values():
        assert field["true_gain_db"] < -1 and field["truly_below"] and field["flagged"]
        assert field["estimated_gain_db"] == pytest.approx(field["true_gain_db"], rel=0.35)
    assert len(row["fields"]["confocal_bpae_nuclei/fov02"]["estimates_db"]) == 2
    for part in ("selection", "report"):
        assert row["summary"][part] | {"mean_abs_error_db": 0} == {
            "fields": 1, "truly_below": 1, "flagged": 1, "hits": 1, "misses": 0,
            "false_alarms": 0, "mean_abs_error_db": 0}


def test_bench_floor_skips_modality_changers_and_needs_two_frames(tmp_path):
    _write_field(tmp_path / "confocal_bpae_nuclei" / "fov02", seed=0, frames=2, size=64)
    result = bench_floor(tmp_path, ("confocal2sted",))
    assert "changes modality" in result["restorers"]["confocal2sted"]["skipped"]
    single = tmp_path / "one"
    _write_field(single / "fov02", seed=0, frames=1, size=64)
    with pytest.raises(ValueError, match="two noisy frames"):
        bench_floor(single)
