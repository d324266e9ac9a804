"""How the real-data benchmarks are drawn: ``bench real`` (restorers against long-average
targets) and ``bench floor`` (the live floor check against the same truths)."""

from __future__ import annotations

from live_restore.experiments.markdown import FLOORS, number, table
from live_restore.experiments.model_cards import ShippedModel

#: Real-data columns: (key of a part mean, header).
REAL_METRICS = (
    ("psnr_affine_bitdepth", "PSNR-affine (8-bit range)"),
    ("psnr_affine_vs_gaussian_db", "vs Gaussian, dB"),
    ("psnr_affine", "PSNR-affine (percentile)"),
    ("ssim", "SSIM"),
    ("ms_per_frame", "ms/frame"),
    ("adapt_cpu_minutes", "training CPU min"),
)


def real_data(data: dict) -> str:
    d = data["data"]
    return (f"report data: {len(d['report'])} fields ({', '.join(d['report'])}); settings "
            f"chosen on the selection part ({len(d['selection'])} fields). Scored: "
            f"{d['scored_frame']}; trained rows learn from {d['training_frames']}.")


def _real_table(data: dict, part: str) -> list[str]:
    rows = []
    for name, row in data["rows"].items():
        label = f"**{name}**" if name in FLOORS else name
        if "skipped" in row:
            rows.append([label, f"skipped: {row['skipped']}", *[""] * (len(REAL_METRICS) - 1)])
            continue
        mean = row["mean"][part]
        if mean is None:
            continue
        notes = [row["kind"]] if row.get("kind") in ("reference", "ceiling") else []
        if mean["fields"] < len(data["data"][part]):
            notes.append(f"{mean['fields']} field{'s' * (mean['fields'] != 1)}")
        if notes:
            label += f" ({', '.join(notes)})"
        rows.append([label, *(number(mean.get(key), 3 if key == "ssim" else 2)
                              for key, _ in REAL_METRICS)])
    return [*table(["row", *(header for _, header in REAL_METRICS)], rows), ""]


def real_body(data: dict, shipped: dict[str, ShippedModel]) -> list[str]:
    budgets = data["budgets"]
    unit = budgets.get("training_unit", "field")  # runs before one network per part: per field
    minutes = budgets.get("n2v_cpu_minutes_per_network", budgets.get("n2v_cpu_minutes_per_field"))
    return [
        f"Report part, mean over its fields (N2V2: {number(minutes)} CPU min per network, one "
        f"network per {unit}):", "",
        *_real_table(data, "report"),
        "Selection part (settings were chosen here; not a result):", "",
        *_real_table(data, "selection"),
    ]


def real_headline(data: dict, shipped: dict[str, ShippedModel]) -> str:
    report = data["summary"]["report"]

    def cell(name: str) -> str:
        mean = report.get(name)
        if mean is None:
            return f"{name} –"
        gap = mean.get("psnr_affine_vs_gaussian_db")
        suffix = "" if gap is None else f" ({gap:+.2f})"
        return f"{name} {number(mean['psnr_affine_bitdepth'])}{suffix}"

    averaged = [name for name in report if name.startswith("denoise_avg")]
    names = ["gaussian", "denoise", *averaged, "adapted", "n2v2", "gaussian_4x_light",
             "supervised"]
    return "report part, PSNR-affine dB (vs Gaussian): " + ", ".join(cell(n) for n in names)


def floor_data(data: dict) -> str:
    d = data["data"]
    return (f"report data: {len(d['report'])} fields ({', '.join(d['report'])}); estimator "
            f"chosen on the selection part ({len(d['selection'])} fields). Judged: "
            f"{d['judged']}.")


def floor_body(data: dict, shipped: dict[str, ShippedModel]) -> list[str]:
    keys = ("fields", "truly_below", "flagged", "hits", "misses", "false_alarms",
            "mean_abs_error_db")
    rows = [[name, part, *(number(s[k]) for k in keys)]
            for name, row in data["restorers"].items()
            for part, s in row.get("summary", {}).items()]
    return [f"A field is *truly below* when its restoration's PSNR-affine is more than "
            f"{number(data['config']['tolerance_db'])} dB below the Gaussian floor's "
            "(σ 1.5 px) against the target; *flagged* when the live check says so.", "",
            *table(["restorer", "part", *(k.replace("_", " ") for k in keys)], rows), ""]


def floor_headline(data: dict, shipped: dict[str, ShippedModel]) -> str:
    cells = [f"{name} {s['hits']}/{s['truly_below']} caught, {s['false_alarms']} false alarms"
             for name, row in data["restorers"].items()
             if (s := row.get("summary", {}).get("report"))]
    return "report part, fields below the floor: " + "; ".join(cells)
