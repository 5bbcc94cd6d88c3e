"""The pure parts of soft binding: list names, manifest labels, calibration and scores, what byContent may return,
and the key-value pairs a batch publishes."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from provenance.c2pa.federated import decode_resolution, resolution_json
from provenance.cid import cid_for_bytes, raw_cid
from provenance.errors import InvalidCIDError
from provenance.hashing import PHashHasher
from provenance.lookup.verdict import Candidate, Policy
from provenance.records import PerceptualHash
from provenance.softbinding.algorithms import REGISTERED, binding_value, hasher_name, registered_name
from provenance.softbinding.calibration import (CALIBRATIONS, TARGET_PAIR_RATE, Calibration, cutoff_for,
                                                fit_beta_binomial, fit_exponential_tail)
from provenance.softbinding.manifest_ids import cid_prefix_of, manifest_id_for, parse_manifest_urn
from provenance.softbinding.matching import EDITED_SOURCE_SCORE, binding_matches, rank, verified_sources
from provenance.softbinding.publish import bindings_for

LIST_NAME = re.compile(r"^[A-Za-z]{2,63}(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+\.?$")  # the list's schema


def test_names_follow_the_list_pattern_and_a_new_model_gets_a_new_name() -> None:
    for name in REGISTERED.values():
        assert LIST_NAME.match(name), name
    other = registered_name("oscar-net", "oscar-v2-0123abcd")
    assert LIST_NAME.match(other) and other not in REGISTERED.values()
    assert hasher_name(PHashHasher()).name == "org.provenance-service.phash.1"
    assert binding_value("00ff00ff00ff00ff") == "AP8A/wD/AP8="


def test_manifest_labels_are_v4_c2pa_urns_that_lead_back_to_the_cid() -> None:
    for n in range(100):
        cid = raw_cid(f"record {n}".encode())
        urn = manifest_id_for(cid)
        assert re.match(r"^urn:c2pa:[0-9a-f-]{36}:provenance$", urn) and manifest_id_for(cid) == urn
        assert uuid.UUID(urn.split(":")[2]).version == 4
        prefix = cid_prefix_of(urn)
        assert prefix is not None and len(prefix) == 31 and cid.startswith(prefix)
    assert manifest_id_for(cid_for_bytes(b"a")) != manifest_id_for(cid_for_bytes(b"b"))
    assert cid_prefix_of(urn.replace(":provenance", ":other")) is None  # another claim generator's label
    assert cid_prefix_of(urn.replace("-4", "-1", 1)) is None  # not a version-4 UUID
    assert parse_manifest_urn(urn + ":v2_1") == uuid.UUID(urn.split(":")[2])
    for bad in ("urn:c2pa:xyz", "urn:uuid:" + urn.split(":")[2], urn + ":" + "x" * 33, urn.replace(":prov", ":p_r")):
        with pytest.raises(InvalidCIDError):
            parse_manifest_urn(bad)


def test_calibration_finds_the_cutoff_from_the_tail_and_scores_log_linearly() -> None:
    # 64-bit codes of independent fair bits: distances Binomial(64, 1/2); three million pairs
    import math

    hist = [round(3e6 * math.comb(64, d) / 2**64) for d in range(65)]
    fit = fit_beta_binomial(hist, 64)
    assert abs(fit.mean - 32) < 0.01 and fit.a > 1e6  # no over-dispersion: the binomial itself
    cutoff = cutoff_for(fit, hist)
    assert cutoff is not None and 3 <= cutoff < min(d for d, c in enumerate(hist) if c)
    cal = Calibration(64, fit.a, fit.b, cutoff, tail=fit_exponential_tail(hist))
    assert cal.pair_rate(cutoff) <= TARGET_PAIR_RATE < cal.pair_rate(cutoff + 40)
    scores = [cal.similarity_score(d) for d in range(cutoff + 2)]
    assert scores[0] == 100 and all(a > b for a, b in zip(scores, scores[1:cutoff + 1]))
    assert 50 <= scores[cutoff] and scores[cutoff + 1] == 0
    # an unrelated pair seen close: the cutoff stops below it, whatever the fits say
    hist[cutoff] += 1
    assert cutoff_for(fit_beta_binomial(hist, 64), hist) == cutoff - 1


def test_shipped_calibrations_meet_the_target() -> None:
    assert "org.provenance-service.phash.1" in CALIBRATIONS
    for name, cal in CALIBRATIONS.items():
        if cal.cutoff is not None:
            assert cal.pair_rate(cal.cutoff) <= TARGET_PAIR_RATE, name
            assert cal.similarity_score(0) == 100 and cal.similarity_score(cal.cutoff) >= 50, name
        assert cal.pairs >= 10_000 and cal.photos >= 100, name


def test_binding_matches_keep_only_what_the_calibration_allows() -> None:
    cal = CALIBRATIONS["org.provenance-service.phash.1"]
    assert cal.cutoff is not None
    hits = [("a", 0), ("b", cal.cutoff), ("c", cal.cutoff + 1), ("a", 5)]
    got = {m.record_cid: m.score for m in binding_matches(hits, cal)}
    assert got == {"a": 100, "b": cal.similarity_score(cal.cutoff)}
    assert [m.record_cid for m in binding_matches([("x", 0), ("y", 1)], None)] == ["x"]  # uncalibrated: exact only
    assert [m.record_cid for m in rank(binding_matches(hits, cal), 1)] == ["a"]


@dataclass
class _Verdict:
    verdict: str
    candidates: list[Candidate]
    policy: Policy = field(default_factory=lambda: Policy(hash_threshold=10, hash_altered=10, change_threshold=12.7))
    record_cid: str | None = None

    def to_obj(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "record_cid": self.record_cid, "hash": "00", "hashes": {"phash": "00"},
                "candidates": [c.to_obj() for c in self.candidates]}


def _cand(cid: str, *, passed: bool = True, distance: int = 0, **kw: Any) -> Candidate:
    return Candidate(cid, ("phash",), distance, distance, inliers=100, inlier_ratio=0.9, passed=passed,
                     change_score=kw.pop("change_score", 1.0), **kw)


def test_verified_sources_are_copies_and_edited_sources_never_unverified_ones() -> None:
    cals = {"phash": CALIBRATIONS["org.provenance-service.phash.1"]}
    verdict = _Verdict("match", [_cand("copy"), _cand("near", passed=False, distance=2),
                                 _cand("scene", off_plane_share=0.9, fundamental_inliers=200, change_score=40.0),
                                 _cand("edited", change_score=40.0)])
    got = {m.record_cid: m.score for m in verified_sources(verdict, cals)}
    assert got == {"copy": 100, "edited": EDITED_SOURCE_SCORE}  # the other photo of the scene is no match
    assert verified_sources(_Verdict("no_match", [_cand("x", passed=False)]), cals) == []
    assert verified_sources(_Verdict("same_scene", [_cand("scene", off_plane_share=0.9, change_score=40.0)]),
                            cals) == []
    assert [m.record_cid for m in verified_sources(verdict, cals, channel="global-id")] == []


def test_a_batch_publishes_one_pair_per_hash_with_the_manifest_label() -> None:
    @dataclass
    class _Rec:
        hashes: tuple[PerceptualHash, ...]

    @dataclass
    class _Signed:
        record: _Rec

    cid = raw_cid(b"record")
    rec = _Signed(_Rec((PerceptualHash("phash", "phash-dct64-v1", 64, "00ff00ff00ff00ff"),
                        PerceptualHash("oscar-net", "oscar-v1-e1b6df66", 64, "0102030405060708"))))
    pairs = bindings_for([(cid, rec)], ["https://provenance.example.org"])  # type: ignore[list-item]
    assert [p.value for p in pairs] == ["AP8A/wD/AP8=", "AQIDBAUGBwg="]
    values = [decode_resolution(p.resolution) for p in pairs]
    assert values[0] == {"endpoints": ["https://provenance.example.org"], "manifestId": manifest_id_for(cid),
                         "alg": "org.provenance-service.phash.1"}
    assert values[1]["alg"] == "org.provenance-service.oscar-net.1"
    assert json.loads(resolution_json(["http://a"], "m", "x")) == {"endpoints": ["http://a"], "manifestId": "m",
                                                                   "alg": "x"}
    with pytest.raises(ValueError):
        resolution_json([], "m", "x")


def test_the_list_entry_we_would_submit_follows_the_list_schema_and_cites_our_results() -> None:
    """docs/softbinding-algorithm-list-entry.json against the rules of c2pa-org/softbinding-algorithm-list's
    softbinding-algorithm-list.schema.json (required fields, name pattern, enums, formats), and its benchmark
    digest against the results file it cites."""
    import hashlib
    from datetime import date, datetime
    from pathlib import Path

    docs = Path(__file__).resolve().parents[3] / "docs"
    entries = json.loads((docs / "softbinding-algorithm-list-entry.json").read_text())
    results = docs / "softbinding-benchmark-results.json"
    digest = hashlib.sha256(results.read_bytes()).hexdigest()
    cited = {a["alg"] for a in json.loads(results.read_text())["algorithms"]}
    assert [e["alg"] for e in entries] and {e["alg"] for e in entries} == set(REGISTERED.values()) == cited
    for e in entries:
        assert {"identifier", "alg", "type", "entryMetadata"} <= set(e) and 0 <= e["identifier"] <= 65535
        assert LIST_NAME.match(e["alg"]) and e["type"] in ("watermark", "fingerprint")
        assert set(e["decodedMediaTypes"]) <= {"application", "audio", "image", "model", "text", "video"}
        meta = e["entryMetadata"]
        assert {"description", "dateEntered", "contact", "informationalUrl"} <= set(meta)
        datetime.fromisoformat(meta["dateEntered"].replace("Z", "+00:00"))
        assert re.match(r"^[^@\s]+@[^@\s]+\.[a-z]+$", meta["contact"]) and meta["informationalUrl"].startswith("https://")
        assert all(LIST_NAME.match(c) for c in meta.get("categories", []))
        for bench in meta["benchmarkingInformation"]:
            assert {"description", "coveredMediaTypes", "benchmarkDate", "results"} <= set(bench)
            date.fromisoformat(bench["benchmarkDate"])
            assert bench["results"]["sha256"] == digest and bench["results"]["url"].endswith(results.name)
        assert all(u.startswith("https://") for u in e.get("softBindingResolutionApis", []))
