"""``bench`` click group: ``attribution`` (run the benchmark) and ``make-dataset`` (build one from photos).

Registered in the main CLI with ``cli.add_command(bench)``; also runnable alone with
``python -m provenance.bench.cli``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import click

from provenance.bench import metrics as MX


@click.group()
def bench() -> None:
    """Attribution benchmark (OSCAR-Net paper §4.2) and its dataset builder."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _csv(value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


@bench.command("attribution")
@click.option("--dataset", "dataset", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="Dataset folder (pairs.csv + distractors.txt).")
@click.option("--methods", default=None, help="Comma-separated method names (default: the classical ones; "
              "'all' adds oscar and its ablations when hasher.load exists; see `bench methods`).")
@click.option("--oscar-weights", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Checkpoint for method oscar (passed to hasher.load(weights=...)).")
@click.option("--oscar-variant", "oscar_variants", multiple=True, metavar="NAME=WEIGHTS",
              help="Trained ablation weights: registers method oscar-NAME as hasher.load(weights=WEIGHTS) (repeatable; "
              "replaces the untrained variant of that name).")
@click.option("--distractors-codes", "distractor_codes", type=click.IntRange(0, 1_000_000), default=0,
              show_default=True, help="Extra distractor codes added to both databases (real image hashes first, "
              "then hashes of synthesised crops of real images).")
@click.option("--distractor-pool", "pool", multiple=True, type=click.Path(path_type=Path, exists=True,
              file_okay=False), help="Folder of extra real distractor images (repeatable).")
@click.option("--out", "out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Output folder (default: <dataset>/../attribution-results).")
@click.option("--cache", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Hash cache SQLite file (default: <out>/hash-cache.sqlite).")
@click.option("--seed", type=int, default=MX.DEFAULT_SEED, show_default=True, help="Tie-breaking seed.")
@click.option("--R", "r", type=click.IntRange(1), default=MX.DEFAULT_R, show_default=True, help="R of mmAP@R.")
@click.option("--sweep", default=None, help="Comma-separated distractor counts to score (default: 0, powers of 10 "
              "below N, N).")
@click.option("--bootstrap", type=click.IntRange(0), default=MX.DEFAULT_RESAMPLES, show_default=True,
              help="Resamples of the references (each with all its queries and pairs, seeded by --seed) for the 95 % "
              "percentile interval of each headline figure; 0: no intervals.")
@click.option("--compare-to", "compare_to", default=None, metavar="METHOD",
              help="Give every other method's figures minus this method's, with paired-bootstrap intervals (the "
              "same resamples for both): a difference whose interval excludes 0 is a result.")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def attribution(dataset: Path, methods: str | None, oscar_weights: Path | None, oscar_variants: tuple[str, ...],
                distractor_codes: int,
                pool: tuple[Path, ...], out: Path | None, cache: Path | None, seed: int, r: int, sweep: str | None,
                bootstrap: int, compare_to: str | None, workers: int, quiet: bool) -> None:
    """Score every method on DATASET; write results.json, results.md, run.json, pair_distances.csv and plots."""
    from provenance.bench.dataset import DatasetError
    from provenance.bench.methods import configure_oscar, register_trained_variant
    from provenance.bench.runner import RunConfig, run_attribution

    configure_oscar(weights=oscar_weights)
    for spec in oscar_variants:
        name, sep, weights = spec.partition("=")
        if not sep or not name or not Path(weights).is_file():
            raise click.BadParameter(f"{spec!r} is not NAME=WEIGHTS with an existing file", param_hint="--oscar-variant")
        register_trained_variant(name, Path(weights))
    out = out or dataset.parent / "attribution-results"
    sweep_sizes = tuple(int(x) for x in _csv(sweep)) if sweep else None
    cfg = RunConfig(dataset, out, _csv(methods), distractor_codes, pool, cache, seed, r, workers, not quiet,
                    sweep_sizes, bootstrap, compare_to)
    try:
        results = run_attribution(cfg)
    except (DatasetError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for name, m in results["methods"].items():
        auc = m.get("intervals", {}).get("AUC")
        ci = f" [{auc[0]:.3f}, {auc[1]:.3f}]" if auc and all(map(math.isfinite, auc)) else ""
        click.echo(f"{name:12s} bits={m['bits']:3d} B1 mAP={m['B1_mAP']:.3f} mmAP={m['B1_mmAP']:.3f} "
                   f"FR1={m['B2_FR1']:.3f} AUC={m['AUC']:.3f}{ci}")
    click.echo(f"results in {out}")


@bench.command("methods")
def list_methods() -> None:
    """List the registered hash methods."""
    from provenance.bench.methods import available_methods

    for name in available_methods():
        click.echo(name)


@bench.command("make-dataset")
@click.option("--photos", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="Folder of photos (searched recursively; the first sub-folder names the subset).")
@click.option("--out", "out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--seen", "n_seen", type=click.IntRange(0), default=6, show_default=True)
@click.option("--unseen", "n_unseen", type=click.IntRange(0), default=3, show_default=True)
@click.option("--manipulated", "n_manipulated", type=click.IntRange(0), default=6, show_default=True)
@click.option("--max-side", type=click.IntRange(64), default=1024, show_default=True)
@click.option("--regions", type=click.Choice(["auto", "detector", "saliency"]), default="auto", show_default=True,
              help="Object boxes for removal/replacement/recolour/warp.")
@click.option("--clipart", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Cut-out folder (default: /usr/share/openclipart/png when installed).")
@click.option("--distractors", "distractor_dirs", multiple=True, type=click.Path(path_type=Path, exists=True,
              file_okay=False), help="Folder of distractor images to copy in (repeatable).")
@click.option("--recipe", type=click.Choice(["classic", "world"]), default="classic", show_default=True,
              help="classic: seen/unseen transforms and edits (the hash's training recipe); world: every reference at "
              "several sizes, benign copies as platforms make them (--copies), edits in size buckets down to 0.5 %.")
@click.option("--sizes", default="stored,384,256", show_default=True,
              help="world: reference long sides ('stored' = the photo as stored; larger ones are skipped).")
@click.option("--copies", "n_copies", type=click.IntRange(0), default=6, show_default=True,
              help="world: benign copies per reference (distinct kinds).")
@click.option("--split", type=click.Choice(["train", "calibration", "test"]), default=None,
              help="Only the photos of this fixed hold-out split (hash of the path: 10 % calibration, 10 % test). "
              "classic from a corpus with a MANIFEST.csv (train-photos): train unless given.")
@click.option("--small-edits", "n_small", type=click.IntRange(0), default=0, show_default=True,
              help="classic: per photo, this many more edits of the kinds that move the fewest pixels (1-5 %: small "
              "insertion, small removal, a face or object swapped within the photo, a changed text line).")
@click.option("--limit", type=click.IntRange(0), default=0, show_default=True,
              help="At most this many photos (a stable pseudo-random subset); 0: all.")
@click.option("--thumbnailed-edits", "n_thumbnailed", type=click.IntRange(0), default=0, show_default=True,
              help="world: per reference, this many more edits of the three smallest size buckets (0.5-5 %), "
              "then thumbnailed to 30-65 % (a feed or a preview of an edited picture).")
@click.option("--unrelated", "n_unrelated", type=click.IntRange(0), default=0, show_default=True,
              help="Training-split photos copied in as unrelated queries (with --split calibration or test).")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True)
@click.option("--overwrite", is_flag=True, help="Rebuild over an existing dataset.")
@click.option("--quiet", is_flag=True)
def make_dataset(photos: Path, out: Path, seed: int, n_seen: int, n_unseen: int, n_manipulated: int, max_side: int,
                 regions: str, clipart: Path | None, distractor_dirs: tuple[Path, ...], recipe: str, sizes: str,
                 n_copies: int, split: str | None, n_small: int, limit: int, n_thumbnailed: int, n_unrelated: int,
                 workers: int, overwrite: bool, quiet: bool) -> None:
    """Build an attribution dataset from PHOTOS into OUT."""
    from provenance.bench.make_dataset import DEFAULT_CLIPART, BuildConfig, build_dataset

    try:
        size_list = tuple(0 if v.strip() == "stored" else int(v) for v in sizes.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{sizes!r} is not a list of long sides ('stored' or pixels)",
                                 param_hint="--sizes") from None
    if not size_list or any(v < 0 or 0 < v < 64 for v in size_list):
        raise click.BadParameter(f"{sizes!r}: each size is 'stored' or at least 64 px", param_hint="--sizes")
    cfg = BuildConfig(seed=seed, n_seen=n_seen, n_unseen=n_unseen, n_manipulated=n_manipulated, max_side=max_side,
                      workers=workers, regions=regions, clipart_dir=str(clipart) if clipart else DEFAULT_CLIPART,
                      recipe=recipe, sizes=size_list, n_copies=n_copies, split=split, limit=limit,
                      n_unrelated=n_unrelated, n_small=n_small, n_thumbnailed=n_thumbnailed)
    try:
        ds = build_dataset(photos, out, cfg, distractor_dirs, overwrite=overwrite, progress=not quiet)
    except (FileExistsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{len(ds.references)} references, {len(ds.queries)} queries, {len(ds.distractors)} distractors "
               f"in {out}")


if __name__ == "__main__":
    bench()
