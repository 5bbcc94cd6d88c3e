"""Lookup: image in, ``Verdict`` out (issue 7). The one place that runs the whole chain:

decode (limits) -> every hash -> top-k per index channel (the tamper-sensitive OSCAR-Net code and the two
tamper-tolerant identity codes: pHash, also probed mirrored, and the 256-bit global-id code, which still finds
rotated, padded and edited copies in a large index), merged -> for each candidate not ruled out by its global-id
distance (the gate shipped with its weights), geometric verification of the query's RootSIFT (and its mirror)
against the record's stored features -> for candidates that pass, the aligned comparison against the original
image from the block store -> ``verdict.decide``.

It also owns what ingest registers for lookup: the features blob beside the record and each hash in the index
(``register``). The record store and block store come from the ledger; the index is a ``HashIndex``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from provenance.errors import ConfigError
from provenance.hashing import Hasher
from provenance.images import QUERY_DECODE_SIDE, decode_query, decode_rgb
from provenance.index.channels import channel_for
from provenance.ledger import Ledger
from provenance.logging import get_logger
from provenance.lookup.calibration import load_calibration
from provenance.lookup.confidence import ConfidenceModel
from provenance.lookup.verdict import Candidate, ObjectChange, Policy, Region, Verdict, decide
from provenance.records import AnyRecord, PerceptualHash, parse_record
from provenance.records_store import StoredRecord

if TYPE_CHECKING:
    from provenance.lookup.compare import ChangeAnalysis
    from provenance.lookup.evidence import PairEvidence

log = get_logger(__name__)

DEFAULT_K = 10
#: The channel whose distance gates verification: a candidate farther from the query than the gate that ships with
#: its weights (``identity_gate``; 112 of 256 bits for global-id-v1) is another photo and is not verified
#: (geometric verification is most of a lookup's time).
IDENTITY_CHANNEL = "global-id"
#: Threads for a lookup's parallel parts, shared by the process: the query's local features (as given and mirrored)
#: and the examination of each candidate (OpenCV and NumPy release the GIL).
FEATURE_THREADS = 4
PARTNER_SCORE = 0.15  # detections this sure still count as "present" when describing object changes
#: A candidate this close in another tolerant channel (as given or mirrored) is verified whatever its global-id
#: distance: small, blurred or noisy copies of dark or smooth photos can land beyond the identity gate (up to 124
#: of 256 bits on the issue-13 calibration split) while their pHash stays a near-duplicate's.
VOUCH_RADIUS = {"phash": 12}


@dataclass(frozen=True)
class Channels:
    """Which hash alg decides *match* (sensitive) and which find the source of an altered copy (tolerant: each is
    searched when a hasher for it is configured; those in ``mirrored`` are not flip-invariant and are also searched
    with the mirrored query's code)."""

    sensitive: str = "oscar-net"
    tolerant: tuple[str, ...] = ("phash", "global-id")
    mirrored: tuple[str, ...] = ("phash",)


def _mirrored_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb[:, ::-1])).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _feature_pool() -> ThreadPoolExecutor:
    """Threads for the parallel parts of every lookup of the process (``FEATURE_THREADS``), started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=FEATURE_THREADS, thread_name_prefix="lookup")
        return _pool


def _forget_pool_after_fork() -> None:
    """A child of ``fork`` (a pre-forking server or worker) inherits the pool without its threads, which would leave
    its tasks waiting forever: it starts its own."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


@functools.lru_cache(maxsize=2048)
def _parsed_record(record_bytes: bytes) -> AnyRecord:
    """``parse_record``, remembered: stored record bytes never change (a record's CID is their hash), and every
    lookup re-reads the same popular candidates (parsing and re-serialising each costs about 1 ms)."""
    return parse_record(record_bytes)


def _hamming_hex(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _vouched(query: dict[str, PerceptualHash], mirrored: dict[str, str], record: dict[str, str],
             models: dict[str, str]) -> bool:
    """Whether a channel of ``VOUCH_RADIUS`` puts the record within its radius of the query (as given or
    mirrored), between codes of one model."""
    for alg, radius in VOUCH_RADIUS.items():
        if alg in query and alg in record and models.get(alg) == query[alg].model_id:
            codes = (query[alg].value, mirrored.get(alg, query[alg].value))
            if min(_hamming_hex(code, record[alg]) for code in codes) <= radius:
                return True
    return False


class Lookup:
    """``migration_hashers``: other models of the sensitive alg (the previous OSCAR-Net weights while ``provenance
    index rebuild --rehash`` fills the new model's channel): the query is hashed with each too, and each one's
    channel version is searched, so records not re-hashed yet are still found. Distances are only ever taken between
    codes of one model: the query's (default model's) code against the record's own code of that model, or the
    re-hashed one the index holds; a record that has neither gets no sensitive distance (geometry and the aligned
    comparison decide, as for a record without that hash)."""

    def __init__(self, ledger: Ledger, index, *, hashers: Sequence[Hasher] | None = None,  # type: ignore[no-untyped-def]
                 channels: Channels = Channels(), k: int = DEFAULT_K, policy: Policy | None = None,
                 change_map_dir: Path | None = None, decode_max_side: int = QUERY_DECODE_SIDE,
                 migration_hashers: Sequence[Hasher] = ()) -> None:
        self.ledger = ledger
        self.index = index  # provenance.index.HashIndex
        self.hashers = tuple(hashers if hashers is not None else ledger.hashers)
        self.migration_hashers = tuple(migration_hashers)
        self.channels = channels
        self.k = k
        self._policy = policy
        self.change_map_dir = change_map_dir
        self.decode_max_side = decode_max_side  # queries are decoded shrunk to this long side (memory, time)

    # --- thresholds -------------------------------------------------------------------------------------------------
    @property
    def policy(self) -> Policy:
        if self._policy is None:
            sensitive = self._hasher(self.channels.sensitive)
            threshold = getattr(sensitive, "threshold", None)
            if threshold is None:
                threshold = 10  # untrained or classical hash: the classic pHash "near duplicate" distance
            identity = next((h for h in self.hashers if h.alg == IDENTITY_CHANNEL), None)
            gate = getattr(identity, "identity_gate", None) if IDENTITY_CHANNEL in self.channels.tolerant else None
            # the comparison's, scene and copy-move thresholds are calibrated (verdict_calibration.json), and so is
            # the hash-alone altered distance, per model (a model without one uses its match threshold)
            cal = load_calibration()
            altered = cal.hash_altered_for(str(getattr(sensitive, "model_id", "")), int(threshold))
            self._policy = cal.policy(hash_threshold=int(threshold), hash_altered=altered, identity_gate=gate)
        return self._policy

    @property
    def confidence(self) -> ConfidenceModel | None:
        """The calibrated confidence model shipped with the thresholds (None: verdicts carry no confidence)."""
        return load_calibration().confidence

    def _hasher(self, alg: str) -> Hasher:
        for h in self.hashers:
            if h.alg == alg:
                return h
        raise ConfigError(f"no hasher for lookup channel {alg!r} is configured")

    # --- ingest side ------------------------------------------------------------------------------------------------
    def _decode(self, data: bytes, name: str, min_side: int = 1) -> np.ndarray:
        cfg = self.ledger.config
        return decode_rgb(data, max_bytes=cfg.max_image_bytes, max_pixels=cfg.max_image_pixels, name=name,
                          min_side=min_side)

    def extract_features(self, data: bytes) -> bytes:
        from provenance.lookup.features import extract_features

        return extract_features(self._decode(data, "image")).to_bytes()

    def register(self, record_cid: str, publisher: str, hashes: Sequence[PerceptualHash], features: bytes) -> None:
        """Index every hash of the record, then store its features (written last: it marks the record registered,
        so a crash in between is repaired by running ``register`` again)."""
        for h in hashes:  # each code into its model's channel version
            self.index.add(channel_for(h.alg, h.model_id), record_cid, publisher, h.value)
        with self.ledger.engine.begin() as conn:
            self.ledger.store.put_features(conn, record_cid, features)

    def is_registered(self, record_cid: str) -> bool:
        with self.ledger.reader.connect() as conn:
            return self.ledger.store.get_features(conn, record_cid) is not None

    def withdraw(self, record_cid: str, publisher: str) -> None:
        self.index.withdraw(record_cid, publisher)

    @staticmethod
    def _with_registration(candidates: list[Candidate], stored: dict[str, StoredRecord]) -> list[Candidate]:
        """Each candidate with its publisher and log position (the verdict prefers the first registrant)."""
        return [replace(c, leaf_index=rec.leaf_index, publisher=rec.publisher_id) if rec is not None else c
                for c, rec in ((c, stored.get(c.record_cid)) for c in candidates)]

    def withdrawn_at(self, record_cid: str) -> datetime | None:
        """When the record was withdrawn from lookups (None while it is live)."""
        return self.index.withdrawn_at(record_cid)

    def search(self, alg: str, value_hex: str, k: int | None = None, *,
               model_id: str | None = None) -> list[tuple[str, int]]:
        """Nearest records to an ``alg`` code of ``model_id`` (default: the configured hasher's model), searched in
        that model's channel version."""
        model = model_id or str(self._hasher(alg).model_id)
        return list(self.index.search(channel_for(alg, model), value_hex, k or self.k))

    def _sensitive_distance(self, query: PerceptualHash, record: Sequence[PerceptualHash], cid: str) -> int | None:
        """Distance between the query's sensitive code and the record's code of the same model: the one it was
        signed with, else the one a re-hash put in that model's channel; None when it has neither."""
        for h in record:
            if h.alg == query.alg and h.model_id == query.model_id:
                return _hamming_hex(query.value, h.value)
        code = self.index.code_of(channel_for(query.alg, query.model_id), cid)
        return None if code is None else _hamming_hex(query.value, code)

    # --- lookup -------------------------------------------------------------------------------------------------
    def record(self, cid: str) -> AnyRecord | None:
        """The stored record (v1 or v2: both have ``.record``, the fields lookup reads)."""
        with self.ledger.reader.connect() as conn:
            stored = self.ledger.store.get(conn, cid)
        return None if stored is None else parse_record(stored.record_bytes)

    def _object_changes(self, query: np.ndarray, original: np.ndarray, homography: np.ndarray,
                        regions: Sequence[Region]) -> tuple[ObjectChange, ...]:
        """Name the objects behind the changed regions with the sensitive hasher's own detector, when it has one. A
        detector failure costs the description, never the verdict."""
        from provenance.lookup.objects import CLAIM_SCORE, describe_object_changes

        detect = getattr(self._hasher(self.channels.sensitive), "detect_objects", None)
        if detect is None:
            return ()
        try:
            # Partners are taken at a low score so that a faint detection in one image is not an addition in the
            # other; only objects at CLAIM_SCORE or more are named.
            found_q = detect(query, min_score=PARTNER_SCORE)
            found_o = detect(original, min_score=PARTNER_SCORE)
        except Exception as exc:  # noqa: BLE001 - any detector failure: no description, same verdict
            log.warning("lookup.object_detection_failed", error=str(exc))
            return ()
        size = (int(original.shape[1]), int(original.shape[0]))
        return describe_object_changes(found_q, found_o, homography, regions, size, claim_score=CLAIM_SCORE)

    def lookup(self, data: bytes, *, name: str = "query", change_map_dir: Path | None = None) -> Verdict:
        """Run the whole lookup. An *altered* verdict's change map is written to ``change_map_dir`` (default: the
        service's) under a name derived from the query and the record, so identical lookups share one file."""
        maps_dir = change_map_dir if change_map_dir is not None else self.change_map_dir
        from provenance.index.errors import EmptyIndexError
        from provenance.lookup.changemap import render_change_map
        from provenance.lookup.errors import FeatureBlobError
        from provenance.lookup.evidence import examine
        from provenance.lookup.features import LocalFeatures
        from provenance.lookup.geometry import query_features

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        cfg = self.ledger.config
        query = decode_query(data, max_bytes=cfg.max_image_bytes, max_pixels=cfg.max_image_pixels, name=name,
                             max_side=self.decode_max_side)
        rgb = query.rgb
        hashes = {h.alg: h.hash_image(query.hash_input) for h in self.hashers}
        sensitive = hashes[self.channels.sensitive]
        previous = [h.hash_image(query.hash_input) for h in self.migration_hashers if h.alg == sensitive.alg]
        timings["decode_hash"] = (time.perf_counter() - t0) * 1000

        t = time.perf_counter()
        found: dict[str, set[str]] = {}
        tolerant = [alg for alg in self.channels.tolerant if alg in hashes]
        # every search in the channel version of the code's model (during a migration, the previous models' too)
        searches = [(channel_for(h.alg, h.model_id), h.value) for h in [sensitive, *previous]]
        mirrored_codes: dict[str, str] = {}
        for alg in tolerant:
            channel = channel_for(alg, hashes[alg].model_id)
            searches.append((channel, hashes[alg].value))
            if alg in self.channels.mirrored:  # flips are benign, and classical hashes are not flip-invariant
                mirrored_codes[alg] = self._hasher(alg).hash_image(_mirrored_png(rgb)).value
                searches.append((channel, mirrored_codes[alg]))
        for channel, value in dict.fromkeys(searches):
            try:
                hits = self.index.search(channel, value, self.k)
            except EmptyIndexError:
                hits = []
            for cid, _ in hits:
                found.setdefault(cid, set()).add(channel)
        timings["search"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        # the query as given and mirrored side by side (after the hashing, which keeps both cores busy itself)
        pool = _feature_pool()
        qf = query_features(rgb, pool) if found else None
        timings["query_features"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        candidates: list[Candidate] = []
        # candidates to examine, each examined on the pool while the next one's features are read (slot: its place
        # in ``candidates``, which keeps the order the verdict's ties are broken by)
        pending: list[tuple[int, str, Future[PairEvidence], Callable[[], np.ndarray], int | None, dict[str, int]]] = []
        # what each candidate's change map would be drawn from: only the verdict's own is rendered
        change_maps: dict[str, tuple[np.ndarray, ChangeAnalysis, tuple[tuple[int, int, int, int], ...]]] = {}
        aligned: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # cid -> (original pixels, query -> original H)
        with self.ledger.reader.connect() as conn:  # every candidate's record in one round trip
            stored = self.ledger.store.get_many(conn, found) if found else {}
        for cid in sorted(found):
            if cid not in stored:  # an index entry with no record in this store
                continue
            signed = _parsed_record(stored[cid].record_bytes)
            rec_hashes = {h.alg: h.value for h in signed.record.hashes}
            dist = self._sensitive_distance(sensitive, signed.record.hashes, cid)
            # a tolerant distance only between codes of one model (after a model upgrade old records keep theirs)
            rec_models = {h.alg: h.model_id for h in signed.record.hashes}
            tols = {alg: _hamming_hex(hashes[alg].value, rec_hashes[alg]) for alg in tolerant
                    if alg in rec_hashes and rec_models[alg] == hashes[alg].model_id}
            tol = next(iter(tols.values()), None)
            gate = self.policy.identity_gate
            if gate is not None and tols.get(IDENTITY_CHANNEL, 0) > gate and not _vouched(
                    hashes, mirrored_codes, rec_hashes, rec_models):
                candidates.append(Candidate(cid, tuple(sorted(found[cid])), dist, tol, tolerant_distances=tols,
                                            reason=f"not verified: {IDENTITY_CHANNEL} distance "
                                                   f"{tols[IDENTITY_CHANNEL]} > {gate} (another photo)"))
                continue
            with self.ledger.reader.connect() as conn:
                blob = self.ledger.store.get_features(conn, cid)
            if blob is None or qf is None:
                candidates.append(Candidate(cid, tuple(sorted(found[cid])), dist, tol, reason="no stored features",
                                            tolerant_distances=tols))
                continue
            try:
                reference = LocalFeatures.from_bytes(blob)
            except FeatureBlobError as exc:  # a damaged blob fails this candidate, not the lookup
                log.warning("lookup.features_unreadable", record=cid, error=str(exc))
                candidates.append(Candidate(cid, tuple(sorted(found[cid])), dist, tol,
                                            reason=f"stored features unreadable: {exc}", tolerant_distances=tols))
                continue
            # the original's pixels, read from the block store once and only for a verified candidate
            original = functools.cache(lambda s=signed, c=cid: self._decode(
                self.ledger.blockstore.get(s.record.image_cid), f"record {c}"))
            pending.append((len(candidates), cid, pool.submit(examine, rgb, qf, reference, original),
                            original, dist, tols))
            candidates.append(Candidate(cid, (), dist, None, reason="being examined"))  # replaced below
        for slot, cid, job, original, dist, tols in pending:
            ev = job.result()
            analysis = ev.analysis
            if analysis is not None and ev.geometry.homography is not None:
                threshold = self.policy.change_threshold_at(analysis.resolution)
                if (analysis.is_altered(threshold) or ev.clone is not None) and maps_dir is not None:
                    change_maps[cid] = (original(), analysis, ev.boxes)
                aligned[cid] = (original(), ev.geometry.homography)
            candidates[slot] = ev.candidate(cid, tuple(sorted(found[cid])), dist, tols)
        timings["verify"] = (time.perf_counter() - t) * 1000

        candidates = self._with_registration(candidates, stored)
        verdict = decide(candidates, self.policy, query_hash=sensitive.value, model=sensitive.model_id)
        if self.confidence is not None:
            verdict = self.confidence.apply(verdict)
        change_map = None
        explanation = verdict.explanation
        if verdict.verdict == "altered" and verdict.record_cid in change_maps and maps_dir is not None:
            path = maps_dir / f"{hashlib.sha256(data).hexdigest()[:16]}-{verdict.record_cid[-12:]}.png"
            try:
                maps_dir.mkdir(parents=True, exist_ok=True)
                pixels, analysis, boxes = change_maps[verdict.record_cid]
                path.write_bytes(render_change_map(pixels, analysis, boxes=boxes))
                change_map = str(path)
            except OSError as exc:  # disk full, read-only: the verdict and its regions stand without the picture
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
                log.warning("lookup.change_map_not_written", path=str(path), error=str(exc))
                explanation += f"; change map not written ({exc.strerror or exc})"
        object_changes: tuple[ObjectChange, ...] = ()
        if verdict.verdict == "altered" and verdict.record_cid in aligned and verdict.regions:
            t = time.perf_counter()
            object_changes = self._object_changes(rgb, *aligned[verdict.record_cid], verdict.regions)
            timings["objects"] = (time.perf_counter() - t) * 1000
            if object_changes:
                explanation += "; " + ", ".join(c.description for c in object_changes)
        timings["total"] = (time.perf_counter() - t0) * 1000
        # Every field the decision set is kept (a field added to Verdict must not be dropped here).
        out = replace(verdict, explanation=explanation, change_map=change_map,
                      hashes={alg: h.value for alg, h in hashes.items()}, timings_ms=timings,
                      object_changes=object_changes)
        log.info("lookup", verdict=out.verdict, record=out.record_cid, candidates=len(candidates),
                 ms=round(timings["total"], 1))
        return out
