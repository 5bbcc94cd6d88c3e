"""Write a benchmark run: results.json (the fixed schema), run.json (settings, timings, skipped methods),
pair_distances.csv (raw per-pair distances, for any later analysis), results.md (a Table-1-style summary plus
per-kind and distractor tables) and PNG plots (matplotlib, Agg backend, so it runs headless).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from provenance.bench.dataset import Dataset
    from provenance.bench.runner import Index

PLOTS = {"hist": "distance_histograms.png", "robust": "robustness_per_transform.png",
         "sensitive": "sensitivity_per_edit.png", "sweep": "distractor_sweep.png"}


def _clean(obj: Any) -> Any:
    """NaN/inf -> null and numpy scalars -> Python, so the JSON is strict."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else round(float(obj), 6)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_all(results: dict[str, Any], run_info: dict[str, Any], ds: Dataset, ix: Index,
              pair_dists: dict[str, np.ndarray], out: Path) -> list[str]:
    """Write every output file into ``out``; returns the plot file names written."""
    (out / "results.json").write_text(json.dumps(_clean(results), indent=1) + "\n", encoding="utf-8")
    with (out / "pair_distances.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        names = list(pair_dists)
        w.writerow(["reference", "query", "relation", "kind", *names])
        for i, p in enumerate(ds.pairs):
            w.writerow([p.reference, p.query, p.relation, p.kind, *(int(pair_dists[n][i]) for n in names)])
    plots = make_plots(results, ix, pair_dists, out)
    run_info = {**run_info, "plots": plots}
    (out / "run.json").write_text(json.dumps(_clean(run_info), indent=1) + "\n", encoding="utf-8")
    (out / "results.md").write_text(render_markdown(results, run_info), encoding="utf-8")
    return plots


# --- markdown -----------------------------------------------------------------------------------------------------

def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _ci(v: Any, interval: Any) -> str:
    """``0.562 [0.49, 0.63]``: the figure and its bootstrap interval (two digits), when there is one."""
    if not interval or any(x is None or (isinstance(x, float) and not math.isfinite(x)) for x in interval):
        return _f(v)
    return f"{_f(v)} [{interval[0]:.2f}, {interval[1]:.2f}]"


def _bootstrap_note(b: dict[str, Any] | None) -> str:
    if not b:
        return ""
    return (f" Brackets: {round(100 * b.get('level', 0.95))} % percentile bootstrap interval over {b['resamples']} "
            f"resamples of the {b['unit']}s (each with all its queries and pairs; the database fixed; seed "
            f"{b['seed']}): a difference between methods smaller than the interval is not a result.")


def render_markdown(results: dict[str, Any], run_info: dict[str, Any]) -> str:
    methods = results["methods"]
    s = run_info.get("settings", {})
    lines = [f"# Attribution benchmark: {results['dataset']}", "",
             f"{s.get('n_references', '?')} references, {s.get('n_queries', '?')} queries "
             f"({s.get('n_benign', '?')} benign, {s.get('n_manipulated', '?')} manipulated), "
             f"{s.get('n_distractor_images', 0)} distractor images, "
             f"{s.get('distractor_codes', {}).get('requested', 0)} extra distractor codes. "
             f"Ties broken at random with seed {s.get('seed')}; R = {s.get('R')}.", "",
             "| Method | Bits | B1 mAP | B1 mmAP | B1 mmAP@R | B2 R@1 | B2 R̄@1 | B2 FR1 | B2 FmAP | AUC "
             "| FPR@TPR95 | FPR@TPR99 | img/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in methods.items():
        def c(key: str, r: dict[str, Any] = r) -> str:
            return _ci(r[key], r.get("intervals", {}).get(key))

        lines.append(f"| {name} | {r['bits']} | {c('B1_mAP')} | {c('B1_mmAP')} | {c('B1_mmAP@R')} "
                     f"| {c('B2_R1')} | {c('B2_R1bar')} | {c('B2_FR1')} | {_f(r['B2_FmAP'])} "
                     f"| {c('AUC')} | {c('FPR_at_TPR95')} | {c('FPR_at_TPR99')} "
                     f"| {_f(r['images_per_s'], 1)} |")
    lines += ["", "FR1 = R@1·R̄@1/(R@1+R̄@1) (paper eq. 13, no factor 2: best 0.5). FPR@TPRx: share of manipulated "
              "pairs accepted at the distance threshold keeping x % of benign pairs (lower is better)."
              + _bootstrap_note(run_info.get("bootstrap")), ""]
    lines += _paired_table(methods)
    lines += _kind_table(methods, "benign", "R1", "Robustness per benign transform: B2 R@1 of those queries "
                         "(higher is better)")
    lines += _kind_table(methods, "manipulated", "R1", "Sensitivity per edit: share of those edited queries whose "
                         "top-1 is still their reference (lower is better)")
    lines += _kind_table(methods, "manipulated", "AUC_vs_benign", "Per edit: AUC of that edit's pair distances "
                         "against all benign pairs (higher is better)")
    lines += _sweep_table(methods)
    dc = s.get("distractor_codes", {})
    if dc.get("requested"):
        lines += ["## Distractor codes", "", f"{dc['requested']} extra codes: {dc['real']} hashes of real images "
                  f"({', '.join(dc.get('real_from', [])) or '–'}), {dc['synthesised']} hashes of synthesised images "
                  f"from a pool of {dc.get('synthesis_pool_images')} real images. {dc.get('recipe', '')}.", ""]
    if run_info.get("skipped"):
        lines += ["## Skipped methods", ""] + [f"- {k}: {v}" for k, v in run_info["skipped"].items()] + [""]
    if run_info.get("plots"):
        lines += ["## Plots", ""] + [f"- `{p}`" for p in run_info["plots"]] + [""]
    if run_info.get("timings"):
        lines += ["## Timings (s)", ""] + [f"- {k}: {v}" for k, v in run_info["timings"].items()] + [""]
    return "\n".join(lines) + "\n"


_PAIRED = (("B1_mmAP", "B1 mmAP"), ("B2_R1", "B2 R@1"), ("B2_R1bar", "B2 R̄@1"), ("B2_FR1", "B2 FR1"), ("AUC", "AUC"),
           ("FPR_at_TPR95", "FPR@TPR95"))


def _paired_table(methods: dict[str, Any]) -> list[str]:
    """Each method minus the ``--compare-to`` method, with paired-bootstrap intervals."""
    rows = {n: r["paired_vs"] for n, r in methods.items() if r.get("paired_vs")}
    if not rows:
        return []
    base = next(iter(rows.values()))["method"]
    lines = [f"## Paired differences against {base}", "",
             "Each figure minus the same figure of " + base + ", with the 95 % interval of that difference over the "
             "same resamples for both methods: an interval that excludes 0 is a result.", "",
             "| Method | " + " | ".join(f"Δ {label}" for _, label in _PAIRED) + " |",
             "|---|" + "---:|" * len(_PAIRED)]
    for name, p in rows.items():
        cells = []
        for key, _ in _PAIRED:
            d, ci = p["difference"].get(key), p["intervals"].get(key)
            ok = ci and all(isinstance(x, float) and math.isfinite(x) for x in ci)
            cells.append(f"{d:+.3f} [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ok and d is not None else _f(d))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _kind_table(methods: dict[str, Any], relation: str, field: str, title: str) -> list[str]:
    names = list(methods)
    kinds = sorted({k for r in methods.values() for k, v in r["per_kind"].items() if v["relation"] == relation})
    if not kinds:
        return []
    lines = [f"## {title}", "", "| kind | n | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for k in kinds:
        first = next(r["per_kind"][k] for r in methods.values() if k in r["per_kind"])
        vals = " | ".join(_f(methods[n]["per_kind"].get(k, {}).get(field)) for n in names)
        lines.append(f"| {k.split('/', 1)[1]} | {first['n']} | {vals} |")
    return lines + [""]


def _sweep_table(methods: dict[str, Any]) -> list[str]:
    if all(len(r["distractor_sweep"]) <= 1 and not r["distractor_sweep"][0]["n_distractor_codes"]
           for r in methods.values()):
        rows = [(n, r["distractor_sweep"][0]) for n, r in methods.items()]
        title = "## Search time (B2 database, top-1)"
    else:
        rows = [(n, e) for n, r in methods.items() for e in r["distractor_sweep"]]
        title = "## Against the number of distractor codes"
    lines = [title, "", "| Method | extra codes | B2 db size | B1 mAP | B1 mmAP@R | B2 FR1 | B2 FmAP | numpy ms/query "
             "| FAISS ms/query |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, e in rows:
        lines.append(f"| {n} | {e['n_distractor_codes']} | {e['database_B2']} | {_f(e['B1_mAP'])} "
                     f"| {_f(e['B1_mmAP@R'])} | {_f(e['B2_FR1'])} | {_f(e['B2_FmAP'])} | {_f(e['search_ms_numpy'])} "
                     f"| {_f(e['search_ms_faiss'])} |")
    return lines + [""]


# --- plots --------------------------------------------------------------------------------------------------------

def make_plots(results: dict[str, Any], ix: Index, pair_dists: dict[str, np.ndarray], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[str] = []
    methods = results["methods"]
    names = list(methods)

    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        d, bits = pair_dists[name] / methods[name]["bits"], methods[name]["bits"]
        bins = np.linspace(0, 1, min(bits, 64) + 1)
        ax.hist(d[ix.pair_benign], bins=bins, alpha=0.6, density=True, label="benign")
        ax.hist(d[~ix.pair_benign], bins=bins, alpha=0.6, density=True, label="manipulated")
        ax.set_title(f"{name} ({bits} bits) AUC {_f(methods[name]['AUC'])}")
        ax.set_xlabel("normalised Hamming distance")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend()
    fig.tight_layout()
    fig.savefig(out / PLOTS["hist"], dpi=100)
    plt.close(fig)
    written.append(PLOTS["hist"])

    for key, relation, ylabel in (("robust", "benign", "B2 R@1 (higher = more robust)"),
                                  ("sensitive", "manipulated", "top-1 = reference (lower = more sensitive)")):
        kinds = sorted({k for r in methods.values() for k, v in r["per_kind"].items() if v["relation"] == relation})
        if not kinds:
            continue
        fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(kinds) * max(1, len(names)) / 3), 4))
        width = 0.8 / len(names)
        x = np.arange(len(kinds))
        for i, name in enumerate(names):
            vals = [methods[name]["per_kind"].get(k, {}).get("R1", np.nan) for k in kinds]
            ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=name)
        ax.set_xticks(x, [k.split("/", 1)[1] for k in kinds], rotation=45, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize="small", ncol=2)
        fig.tight_layout()
        fig.savefig(out / PLOTS[key], dpi=100)
        plt.close(fig)
        written.append(PLOTS[key])

    if any(len(r["distractor_sweep"]) > 1 for r in methods.values()):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        for name in names:
            sw = methods[name]["distractor_sweep"]
            n = [max(1, e["n_distractor_codes"]) for e in sw]  # 0 drawn at 1 on the log axis
            a1.plot(n, [e["B2_FR1"] for e in sw], marker="o", label=name)
            a2.plot(n, [e["B1_mmAP@R"] for e in sw], marker="o", label=name)
        for ax, title in ((a1, "B2 FR1"), (a2, f"B1 mmAP@R (R={next(iter(methods.values()))['R']})")):
            ax.set_xscale("log")
            ax.set_xlabel("extra distractor codes (0 drawn at 1)")
            ax.set_title(title)
        a1.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(out / PLOTS["sweep"], dpi=100)
        plt.close(fig)
        written.append(PLOTS["sweep"])
    return written
