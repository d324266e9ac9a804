"""How ``bench restorers --task axial``'s JSON is drawn: see
:mod:`live_restore.experiments.bench_renderers`."""

from __future__ import annotations

import math

from live_restore.experiments.markdown import number, table
from live_restore.experiments.model_cards import ShippedModel

#: Floors first, in this order, then the models.
AXIAL_FLOORS = ("raw_every_plane", "linear", "cubic", "classical_cubic")
COLUMNS = (("psnr_filled", "PSNR filled planes"), ("psnr_acquired", "PSNR acquired planes"),
           ("psnr_all", "PSNR all"), ("ssim_all", "SSIM volume"), ("ms_per_stack", "ms/stack"))


def _cell(key: str, value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "–"
    return number(value, 3 if key.startswith("ssim") else 0 if key.startswith("ms") else 2)


def axial_data(data: dict) -> str:
    return (f"report data: {data['stacks']} simulated stacks of {data['planes']} planes "
            f"{data['plane_spacing_um'] * 1000:.0f} nm apart, {data['size']}² "
            f"({', '.join(data['modalities'])}), report seed {data['report_seed']} (training "
            f"seed {data['training_seed']}; {data['selection']}); {data['cpu_count']} CPU "
            "cores. Every k-th plane acquired; `raw_every_plane` is the stack acquired at "
            "every plane at the same dose per plane (k times the light).")


def axial_body(data: dict, shipped: dict[str, ShippedModel]) -> list[str]:
    lines: list[str] = []
    for k, rows in data["results"].items():
        order = [m for m in AXIAL_FLOORS if m in rows] + [m for m in rows if m not in AXIAL_FLOORS]
        body = [[f"**{m}**" if m in AXIAL_FLOORS else f"`{m}`",
                 *(_cell(key, rows[m][key]) for key, _ in COLUMNS)] for m in order]
        lines += [f"One plane in {k[1:]} acquired:", "",
                  *table(["stack restored by", *(h for _, h in COLUMNS)], body), ""]
    for name, check in data["targets_check"].items():
        gains = ", ".join(f"{k} {g:+.2f} dB ({check['filled_gain_over_best_floor_db'][k]:+.2f} "
                          "over the best floor)"
                          for k, g in check["filled_gain_over_cubic_db"].items())
        cuts = ", ".join(f"{k} {gap:+.3f} ({'met' if check['dose_cut_met'][k] else 'not met'})"
                         for k, gap in check["ssim_vs_raw_every_plane"].items())
        lines.append(f"`{name}`: filled planes over cubic {gains}; target ≥ +3 dB over cubic: "
                     f"{'met' if check['filled_gain_met'] else 'not met'}. Volume SSIM − the raw "
                     f"stack acquired at every plane (a k-fold dose cut when ≥ 0): {cuts}.")
    return [*lines, "", *_dose_arm(data.get("dose_arm")), ""]


def _dose_arm(arm: dict | None) -> list[str]:
    """The dose arm: photons per stack (dose per plane × planes acquired) against SSIM."""
    if not arm:
        return []
    reference = arm["reference"]["ssim_all"]
    rows = [[f"`{r['restored_by']}`", f"1 in {r['every']}", str(r["planes"]),
             f"{r['dose']:g}", number(r["photons_per_stack"], 3), number(r["ssim_all"], 3),
             "yes" if r["ssim_all"] >= reference else "no"]
            for r in sorted(arm["rows"], key=lambda r: (r["photons_per_stack"], r["every"]))]
    cheapest = arm["cheapest_meeting_reference"]
    verdict = ("no restored stack reaches it" if cheapest is None else
               f"the cheapest restored stack that reaches it acquires one plane in "
               f"{cheapest['every']} at dose {cheapest['dose']:g}: "
               f"{number(arm['photons_per_stack_cut'], 1)}× fewer photons per stack"
               + (" (at the lowest dose swept: the cut may be larger)"
                  if arm.get("cut_bounded_by_lowest_dose") else ""))
    return [f"Dose arm (`{arm['model']}`, `{arm['model_version']}`): z-skipping counted as "
            "dose. Photons per stack relative to the raw stack acquired at every plane at the "
            f"task's dose (SSIM {number(reference, 3)}, the reference); {verdict}.", "",
            *table(["stack restored by", "acquired", "planes", "dose per plane",
                    "photons per stack", "SSIM volume", "≥ reference"], rows)]


def axial_headline(data: dict, shipped: dict[str, ShippedModel]) -> str:
    """Filled-plane PSNR per k of the best model and the best CARE row (else the runner-up),
    the floors, and the dose arm's cut."""
    parts = []
    for k, rows in data["results"].items():
        models = sorted((m for m in rows if m not in AXIAL_FLOORS),
                        key=lambda m: -rows[m]["psnr_filled"])
        peers = [m for m in models[1:] if m.startswith("care")]  # CARE: the field's peer
        shown = models[:1] + (peers[:1] or models[1:2])
        best = ", ".join(f"`{m}` {rows[m]['psnr_filled']:.2f}" for m in shown)
        floors = (f"cubic {rows['cubic']['psnr_filled']:.2f}, "
                  f"linear {rows['linear']['psnr_filled']:.2f}")
        parts.append(f"1 in {k[1:]} acquired, filled planes: {best or 'no model'}; {floors}")
    arm = data.get("dose_arm") or {}
    if arm.get("photons_per_stack_cut"):
        parts.append(f"dose arm: {arm['photons_per_stack_cut']:.1f}× fewer photons per stack")
    return "; ".join(parts)
