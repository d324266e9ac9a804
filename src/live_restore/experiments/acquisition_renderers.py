"""How the acquisition benchmarks' JSON is drawn (``bench acquisition``, with and without
``--view``): see :mod:`live_restore.experiments.bench_renderers`."""

from __future__ import annotations

from live_restore.experiments.markdown import metric, number, table
from live_restore.experiments.model_cards import ShippedModel


def acquisition_data(data: dict) -> str:
    return (f"report data: {data['camera']}, {data['frames']} frames per run, {data['repeats']} "
            f"runs of each, restorer `{data['restorer']}`, {data['cpu_count']} CPU cores.")


def acquisition_body(data: dict, shipped: dict[str, ShippedModel]) -> list[str]:
    def runs(key: str) -> str:
        return ", ".join(metric("fps", v) for v in data[key])

    slow = data["slow_restorer"]
    rows = [
        ["baseline fps (median; runs)", f"{metric('fps', data['baseline_fps'])} "
                                        f"({runs('baseline_fps_runs')})"],
        ["hooked fps (median; runs)", f"{metric('fps', data['hooked_fps'])} "
                                      f"({runs('hooked_fps_runs')})"],
        ["overhead ratio (baseline / hooked; target ≤ 1.05)", number(data["overhead_ratio"])],
        ["raw frames written / emitted",
         f"{data['raw_frames_written']} / {data['frames_emitted']}"],
        ["restored after drain / pending",
         f"{data['restored_frames']} / {data['pending_after_drain']}"],
        ["restore fps (worker busy time)", number(data["restore_fps"], 1)],
        ["latency p50 / p95, ms (frameReady → restored written)",
         f"{data['latency_ms_p50']:.0f} / {data['latency_ms_p95']:.0f}"],
        ["peak RSS, MB", f"{data['peak_rss_mb']:.0f}"],
        [f"slow restorer ({slow['seconds_per_frame']:.3f} s/frame): acquisition fps",
         metric("fps", slow["acquisition_fps"])],
        ["slow restorer: raw written / restored / pending after drain",
         f"{slow['raw_frames_written']} / {slow['restored_frames']} / "
         f"{slow['pending_after_drain']}"],
        ["slow restorer: RSS growth, MB", f"{slow['rss_growth_mb']:.0f}"],
    ]
    return [*table(["metric", "value"], rows), ""]


def acquisition_headline(data: dict, shipped: dict[str, ShippedModel]) -> str:
    return (f"overhead ratio {number(data['overhead_ratio'])} (baseline "
            f"{metric('fps', data['baseline_fps'])} fps, hooked {metric('fps', data['hooked_fps'])}"
            f" fps); {data['raw_frames_written']} / {data['frames_emitted']} raw frames written")


def view_data(data: dict) -> str:
    return (f"report data: {data['camera']}, {data['frames']} frames per run, {data['repeats']} "
            f"runs of each arm, restorer `{data['restorer']}`, {data['cpu_count']} CPU cores, "
            f"display {data['display'] or 'none'} (Xvfb).")


def view_body(data: dict, shipped: dict[str, ShippedModel]) -> list[str]:
    def runs(key: str) -> str:
        return ", ".join(metric("fps", v) for v in data[key])

    rows = [
        ["MDA fps, no window (median; runs)",
         f"{metric('fps', data['hooked_fps'])} ({runs('hooked_fps_runs')})"],
        ["MDA fps, viewer open (median; runs)",
         f"{metric('fps', data['viewed_fps'])} ({runs('viewed_fps_runs')})"],
        [f"overhead ratio (no window / viewer; target ≤ {data['target_overhead_ratio']})",
         number(data["overhead_ratio"])],
        ["window start-up before the first exposure, s (median, viewed − plain set-up)",
         number(data["window_startup_seconds"])],
        ["window redraws per viewed run", ", ".join(map(str, data["redraws_per_viewed_run"]))],
        ["raw frames written / restored per viewed run",
         ", ".join(f"{w} / {r}" for w, r in zip(data["raw_frames_written_viewed"],
                                                 data["restored_viewed"], strict=True))],
    ]
    return [*table(["metric", "value"], rows), ""]


def view_headline(data: dict, shipped: dict[str, ShippedModel]) -> str:
    verdict = "met" if data["overhead_ratio"] <= data["target_overhead_ratio"] else "NOT met"
    return (f"overhead ratio {number(data['overhead_ratio'])} with the viewer open (target "
            f"≤ {data['target_overhead_ratio']}: {verdict}); {metric('fps', data['viewed_fps'])}"
            f" fps viewed, {metric('fps', data['hooked_fps'])} without a window")
