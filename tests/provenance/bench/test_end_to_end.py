"""The ``bench`` CLI end to end on a tiny built dataset: make-dataset, then attribution with classical methods and
extra distractor codes; checks results.json's schema, the written files, and that a re-run hits the cache."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from provenance.bench.cli import bench

REQUIRED = {"bits", "B1_mAP", "B1_mmAP", "B2_R1", "B2_R1bar", "B2_FR1", "B2_FmAP", "AUC", "FPR_at_TPR95",
            "FPR_at_TPR99", "per_kind", "images_per_s"}
METHODS = ["ahash", "dhash", "pdq", "colorhash"]


@pytest.fixture(scope="module")
def tiny(few_photos: Path, shared_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A dataset built by ``make-dataset`` from three photos (3 references, 15 queries) and a one-photo pool."""
    root = tmp_path_factory.mktemp("tiny")
    pool = root / "pool"
    pool.mkdir()
    shutil.copy(shared_photos / "kodak24" / "kodim01.png", pool / "kodim01.png")
    ds = root / "ds"
    res = CliRunner().invoke(bench, ["make-dataset", "--photos", str(few_photos), "--out", str(ds), "--seed", "1",
                                     "--seen", "2", "--unseen", "1", "--manipulated", "2", "--max-side", "256",
                                     "--regions", "saliency", "--workers", "1", "--distractors", str(pool),
                                     "--quiet"])
    assert res.exit_code == 0, res.output
    assert (ds / "pairs.csv").is_file() and (ds / "distractors.txt").read_text().strip()
    return ds, pool


def test_make_dataset_then_attribution(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    ds, pool = tiny
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["attribution", "--dataset", str(ds), "--methods", ",".join(METHODS), "--distractors-codes", "30",
            "--distractor-pool", str(pool), "--out", str(out), "--workers", "1", "--quiet", "--R", "5"]
    res = runner.invoke(bench, args)
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"dataset", "methods"} and results["dataset"] == "ds"
    assert list(results["methods"]) == METHODS
    for name, m in results["methods"].items():
        assert REQUIRED <= set(m), name
        assert m["bits"] == (256 if name == "pdq" else 64)
        assert 0 <= m["B1_mAP"] <= 1 and 0 <= m["B2_FR1"] <= 0.5 and 0 <= m["AUC"] <= 1
        assert m["B1_mmAP"] <= m["B1_mAP"] + 1e-9 and m["images_per_s"] > 0
        assert "B1_mmAP@R" in m and m["R"] == 5
        assert any(k.startswith("benign/seen:") for k in m["per_kind"])
        assert any(k.startswith("manipulated/") for k in m["per_kind"])
        sweep = m["distractor_sweep"]
        assert [e["n_distractor_codes"] for e in sweep] == [0, 30]
        assert sweep[-1]["database_B2"] == sweep[0]["database_B2"] + 30
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["distractor_codes"]["real"] == 1  # the pool image; 29 synthesised from real images
    assert run["settings"]["distractor_codes"]["synthesised"] == 29
    for f in ["results.md", "pair_distances.csv", *run["plots"]]:
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert {"distance_histograms.png", "robustness_per_transform.png", "sensitivity_per_edit.png",
            "distractor_sweep.png"} <= set(run["plots"])
    assert "| ahash | 64 |" in (out / "results.md").read_text()

    def rows() -> int:
        with sqlite3.connect(out / "hash-cache.sqlite") as db:
            return int(db.execute("SELECT COUNT(*) FROM codes").fetchone()[0])

    before = rows()
    # refs + queries + the dataset's distractor (a JPEG copy) + the pool original + synthesised codes
    assert before == len(METHODS) * (3 + 3 * 5 + 1 + 1 + 29)
    res = runner.invoke(bench, args)
    assert res.exit_code == 0, res.output
    again = json.loads((out / "results.json").read_text())
    def scores(r: dict) -> dict:  # everything but the timings
        out = {k: v for k, v in r.items() if k not in ("images_per_s", "distractor_sweep")}
        out["sweep"] = [{k: v for k, v in e.items() if not k.startswith("search_ms")} for e in r["distractor_sweep"]]
        return out

    for m in METHODS:  # deterministic (intervals included: the resamples are seeded), and served from the cache
        assert scores(again["methods"][m]) == scores(results["methods"][m])
    assert rows() == before


def test_attribution_bootstrap_intervals(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    ds, _ = tiny
    runner = CliRunner()
    args = ["attribution", "--dataset", str(ds), "--methods", "phash,colorhash", "--workers", "1", "--quiet"]
    res = runner.invoke(bench, [*args, "--out", str(tmp_path / "b"), "--bootstrap", "300", "--seed", "5"])
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["bootstrap"] == {"resamples": 300, "unit": "reference", "seed": 5, "level": 0.95,
                                "interval": "percentile"}
    widths = []
    for name, m in results["methods"].items():
        assert set(m["intervals"]) == {"B1_mAP", "B1_mmAP", "B1_mmAP@R", "B2_R1", "B2_R1bar", "B2_FR1", "AUC",
                                       "FPR_at_TPR95", "FPR_at_TPR99"}, name
        for key, (lo, hi) in m["intervals"].items():
            assert lo - 1e-6 <= m[key] <= hi + 1e-6, (name, key, lo, m[key], hi)
            widths.append(hi - lo)
    assert max(widths) > 0  # three references that differ: some figure must spread
    md = (tmp_path / "b" / "results.md").read_text()
    auc = results["methods"]["phash"]["intervals"]["AUC"]
    assert f"{results['methods']['phash']['AUC']:.3f} [{auc[0]:.2f}, {auc[1]:.2f}]" in md
    assert "bootstrap interval over 300 resamples of the references" in md
    assert "Paired differences" not in md

    res = runner.invoke(bench, [*args, "--out", str(tmp_path / "p"), "--bootstrap", "300", "--seed", "5",
                                "--compare-to", "phash"])
    assert res.exit_code == 0, res.output
    paired = json.loads((tmp_path / "p" / "results.json").read_text())["methods"]
    assert "paired_vs" not in paired["phash"]
    pv = paired["colorhash"]["paired_vs"]
    assert pv["method"] == "phash"
    for key, (lo, hi) in pv["intervals"].items():
        assert pv["difference"][key] == pytest.approx(paired["colorhash"][key] - paired["phash"][key])
        assert lo - 1e-6 <= pv["difference"][key] <= hi + 1e-6, key
    assert "## Paired differences against phash" in (tmp_path / "p" / "results.md").read_text()
    res = runner.invoke(bench, [*args, "--out", str(tmp_path / "x"), "--compare-to", "nosuch"])
    assert res.exit_code != 0 and "nosuch" in res.output

    res = runner.invoke(bench, [*args, "--out", str(tmp_path / "n"), "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "n" / "results.json").read_text())
    assert all("intervals" not in m for m in results["methods"].values())
    assert json.loads((tmp_path / "n" / "run.json").read_text())["bootstrap"] is None
    assert "[" not in (tmp_path / "n" / "results.md").read_text().split("| phash |")[1].split("\n")[0]


def test_attribution_reports_bad_dataset(tmp_path: Path) -> None:
    (tmp_path / "pairs.csv").write_text("reference,query\n")
    res = CliRunner().invoke(bench, ["attribution", "--dataset", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "distractors.txt is missing" in res.output
