"""``python -m hasher.train``: cache CNN features, train the head, export shipped weights. See ``hasher.train``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch

from hasher.config import OscarConfig
from hasher.errors import HasherError
from hasher.train.data import all_paths, read_groups
from hasher.train.export import export_weights
from hasher.train.features import FeatureCache
from hasher.train.last_stage import LastStageSettings
from hasher.train.loop import TrainSettings, load_features, train
from hasher.train.recipe import RECIPE
from hasher.train.stage_cache import StageCache


def _config(path: str | None) -> OscarConfig:
    return OscarConfig.from_dict(json.loads(Path(path).read_text())) if path else RECIPE


def _add_settings(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--flag`` per int / float field of a settings dataclass, defaulting to the field's default."""
    for fld in dataclasses.fields(cls):
        if fld.type in ("int", "float"):
            parser.add_argument("--" + fld.name.replace("_", "-"), type=int if fld.type == "int" else float,
                                default=fld.default)


def _settings(args: argparse.Namespace, cls: type) -> Any:
    return cls(**{fld.name: getattr(args, fld.name) for fld in dataclasses.fields(cls) if fld.type in ("int", "float")})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hasher.train", description=__doc__)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1: on a shared 2-core machine two threads spin against each other)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("features", help="extract and cache CNN features of every image in the datasets")
    f.add_argument("--dataset", action="append", required=True)
    f.add_argument("--cache", required=True)
    f.add_argument("--config")
    f.add_argument("--shard", default="0/1", help="I/N: extract only every N-th image starting at I (run N processes)")

    t = sub.add_parser("fit", help="train (resumes from RUN/last.pt)")
    t.add_argument("--train", action="append", required=True, help="training dataset folder (repeatable)")
    t.add_argument("--val", action="append", required=True, help="validation dataset folder (repeatable)")
    t.add_argument("--cache", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--config")
    t.add_argument("--streams", help="comma-separated streams replacing the recipe's (e.g. global,objects)")
    _add_settings(t, TrainSettings)

    e = sub.add_parser("export", help="write RUN/best.pt as shipped safetensors weights with calibration")
    e.add_argument("--run", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--val", action="append", required=True, help="calibration dataset folder(s)")
    e.add_argument("--cache", required=True)
    e.add_argument("--name", default="oscar-v1")

    c = sub.add_parser("stage-features", help="cache both CNNs' maps at the cut before their last stage(s)")
    c.add_argument("--dataset", action="append", required=True)
    c.add_argument("--cache", required=True)
    c.add_argument("--config")
    c.add_argument("--stages", type=int, default=1, help="EfficientNet-Lite0 stages left to tune (cut before them)")
    c.add_argument("--shard", default="0/1", help="I/N: extract only every N-th image starting at I (run N processes)")

    ff = sub.add_parser("features-from-stage", help="fill the head-only feature cache from the stage cache (the "
                                                    "frozen tail once per image, no detector)")
    ff.add_argument("--dataset", action="append", required=True)
    ff.add_argument("--stage-cache", required=True)
    ff.add_argument("--cache", required=True)
    ff.add_argument("--config")
    ff.add_argument("--stages", type=int, default=1)

    lf = sub.add_parser("fit-last", help="fine-tune the CNNs' last stage(s) with the head on the stage cache "
                                         "(resumes from RUN/last.pt)")
    lf.add_argument("--train", action="append", required=True, help="training dataset folder (repeatable)")
    lf.add_argument("--val", action="append", required=True, help="validation dataset folder (repeatable)")
    lf.add_argument("--cache", required=True)
    lf.add_argument("--out", required=True)
    lf.add_argument("--config")
    lf.add_argument("--streams", help="comma-separated streams replacing the recipe's (e.g. global,objects)")
    lf.add_argument("--init", help="start from this weights file's head (and tuned tensors)")
    lf.add_argument("--stage-cache", help="with --stages 0: derive the head-only features from this stage cache")
    lf.add_argument("--cached-only", action="store_true", help="extract nothing: train on the images already cached")
    lf.add_argument("--subsets", help="comma-separated subsets (pairs.csv's dataset column, e.g. the licence class "
                                      "open) to train on; default: all")
    _add_settings(lf, LastStageSettings)

    le = sub.add_parser("export-last", help="write a fit-last run's best state as oscar-net-head/2 weights")
    le.add_argument("--run", required=True)
    le.add_argument("--out", required=True)
    le.add_argument("--val", action="append", required=True, help="calibration dataset folder(s)")
    le.add_argument("--cache", required=True)
    le.add_argument("--name", required=True)
    le.add_argument("--stage-cache", help="for a head-only run: derive its features from this stage cache")

    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    except HasherError as exc:  # bad weights, configs or caches: one clear line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.cmd == "features":
        config = _config(args.config)
        groups = read_groups(args.dataset)
        index, count = (int(v) for v in args.shard.split("/"))
        FeatureCache(args.cache, config).fill(all_paths(groups)[index::count])
        return 0
    if args.cmd == "fit":
        config = _config(args.config)
        if args.streams:
            config = config.replace(streams=tuple(args.streams.split(",")))
        settings = _settings(args, TrainSettings)
        train_groups = read_groups(args.train)
        val_groups = read_groups(args.val, first_origin=len(train_groups))
        cache = FeatureCache(args.cache, config)
        shas = cache.fill(all_paths(train_groups) + all_paths(val_groups))
        feats = load_features(cache, train_groups, shas) | load_features(cache, val_groups, shas)
        state = train(config, settings, train_groups, val_groups, feats, Path(args.out))
        print(json.dumps({"best_step": state.best_step, "best_score": state.best_score, "seconds": state.seconds}))
        return 0
    if args.cmd in ("stage-features", "features-from-stage", "fit-last", "export-last"):
        return _last_stage(args)
    export_weights(Path(args.run), Path(args.out), read_groups(args.val), args.cache, name=args.name)
    return 0


def _last_stage(args: argparse.Namespace) -> int:
    from hasher.train.last_stage import export_last_stage, fit_last_stage_cli

    if args.cmd == "stage-features":
        config = _config(args.config)
        index, count = (int(v) for v in args.shard.split("/"))
        StageCache(args.cache, config, args.stages).fill(all_paths(read_groups(args.dataset))[index::count])
        return 0
    if args.cmd == "features-from-stage":
        from hasher.train.stage_cache import features_from_stage

        config = _config(args.config)
        written = features_from_stage(StageCache(args.stage_cache, config, args.stages),
                                      FeatureCache(args.cache, config), all_paths(read_groups(args.dataset)))
        print(json.dumps({"written": written}))
        return 0
    if args.cmd == "fit-last":
        config = _config(args.config)
        if args.streams:
            config = config.replace(streams=tuple(args.streams.split(",")))
        settings = _settings(args, LastStageSettings)
        state = fit_last_stage_cli(config, settings, args.train, args.val, args.cache, Path(args.out), args.init,
                                   args.subsets.split(",") if args.subsets else None, args.stage_cache,
                                   args.cached_only)
        print(json.dumps({"best_step": state.best_step, "best_score": state.best_score, "seconds": state.seconds,
                          "stopped_by": state.stopped_by}))
        return 0
    meta = export_last_stage(Path(args.run), Path(args.out), args.val, args.cache, name=args.name,
                             stage_cache=args.stage_cache)
    print(json.dumps({k: meta[k] for k in ("name", "threshold", "validation") if k in meta}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
