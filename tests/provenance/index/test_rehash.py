"""Model migration (issue 17): ``provenance index rebuild --rehash`` re-hashes a ledger made with ``oscar-v1`` under
a second model into that model's channel version, leaving every signed record and the log as they were; lookup
searches both versions while it runs and only ever compares codes of one model.

The second model is honest and cheap: the shipped ``oscar-v1`` head with seeded noise on its fusion layer, written
with another name by the exporter's own writer (``hasher.train.export.write_head_weights``), so its model id differs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from provenance.config import Settings
from provenance.db import make_engine
from provenance.demo import benign_reshare
from provenance.index import HashIndex, channel_for, channels_of
from provenance.index.rehash import rehash_channel
from provenance.records import PerceptualHash, PublisherMetadata, parse_record
from provenance.services import open_service
from tests.provenance.index.test_cli import root_with

PHOTOS = ("kodak24/kodim03.png", "kodak24/kodim15.png", "kodak24/kodim20.png", "kodak24/kodim23.png")
NEW_PHOTO = "kodak24/kodim12.png"


def _hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def test_channel_versions() -> None:
    assert channel_for("oscar-net", "oscar-v1-e1b6df66") == "oscar-net"  # what every existing ledger holds
    assert channel_for("phash", "phash-dct64-v1") == "phash"
    assert channel_for("oscar-net", "oscar-v2-1a2b3c4d") == "oscar-net-1a2b3c4d"
    untagged = channel_for("oscar-net", "my model")
    assert untagged.startswith("oscar-net-") and len(untagged) == len("oscar-net-") + 8
    assert channels_of("oscar-net", ["oscar-net", "oscar-net-1a2b3c4d", "oscar-netx", "oscar-net-zz", "phash"]) == \
        ["oscar-net", "oscar-net-1a2b3c4d"]


class _Hasher:
    alg, model_id = "oscar-net", "m2-deadbeef"

    def hash_image(self, data: bytes) -> PerceptualHash:
        return PerceptualHash(self.alg, self.model_id, 64, data[:8].hex())


def test_rehash_is_resumable_reports_failures_and_follows_withdrawals(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    from provenance.db import create_schema

    create_schema(engine)
    index = HashIndex(tmp_path, engine)
    for i in range(6):
        index.add("oscar-net", f"cid{i}", "acme", f"{i:016x}")
    index.withdraw("cid5", "acme")
    images = {f"cid{i}": bytes([i]) * 8 for i in range(5)}

    def image_of(cid: str) -> bytes:
        if cid == "cid3":
            raise LookupError("block gone")
        if cid == "cid4":  # withdrawn while its image is read
            index.withdraw("cid4", "acme")
        return images[cid]

    first = rehash_channel(index, _Hasher(), image_of, limit=2, page=2)
    assert (first.channel, first.sources, first.rehashed, first.already) == ("oscar-net-deadbeef", ["oscar-net"], 2, 0)
    assert first.limited and not first.complete
    rest = rehash_channel(index, _Hasher(), image_of, page=2)
    assert (rest.rehashed, rest.already, rest.withdrawn_meanwhile) == (2, 2, 1)
    assert rest.failed[0][0] == "cid3" and "block gone" in rest.failed[0][1] and not rest.complete
    target = "oscar-net-deadbeef"
    assert [index.code_of(target, f"cid{i}") for i in range(6)] == ["00" * 8, "01" * 8, "02" * 8, None, None, None]
    assert index.entry(target, "cid4") is not None and not index.entry(target, "cid4").live
    assert index.withdrawn_at("cid4") is not None  # every entry of a withdrawn record stays withdrawn
    assert [m.record_cid for m in index.search(target, "01" * 8, k=1)] == ["cid1"]
    assert index.search("oscar-net", f"{1:016x}", k=1)[0].record_cid == "cid1"  # the old version is untouched
    engine.dispose()


@pytest.fixture(scope="module")
def second_model(tmp_path_factory) -> Path:
    from hasher.api import SHIPPED_WEIGHTS, _model_from_head, read_head_weights
    from hasher.train.export import write_head_weights

    head = read_head_weights(SHIPPED_WEIGHTS)
    model = _model_from_head(head)
    gen = torch.Generator().manual_seed(17)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("fuse."):
                p.add_(0.3 * p.std() * torch.randn(p.shape, generator=gen))
    path = tmp_path_factory.mktemp("weights") / "oscar_test2.safetensors"
    write_head_weights(model, path, name="oscar-test2", threshold=head.threshold)
    return path


def test_rehash_a_v1_ledger_into_a_second_models_channel(tmp_path: Path, shared_photos: Path,
                                                         second_model: Path) -> None:
    import hasher

    data_dir = tmp_path / "data"
    images = {rel: (shared_photos / rel).read_bytes() for rel in (*PHOTOS, NEW_PHOTO)}
    v1 = open_service(Settings(data_dir=data_dir))  # the ledger as oscar-v1 made it
    try:
        v1.ledger.add_publisher("acme")
        cids = {rel: v1.pipeline.ingest(images[rel], publisher="acme", metadata=PublisherMetadata(title=rel)).cid
                for rel in PHOTOS}
        gone = cids[PHOTOS[3]]
        v1.ledger.withdraw(gone, "acme")
        v1.lookup.withdraw(gone, "acme")
        v1_model = v1.ledger.hashers[0].model_id
    finally:
        v1.close()
    assert v1_model.startswith("oscar-v1-")
    new = hasher.load(second_model, device="cpu")
    channel = channel_for("oscar-net", new.model_id)
    assert new.model_id.startswith("oscar-test2-") and channel != "oscar-net"

    # the switch: new records get the second model; lookup also searches the previous model's channel
    svc = open_service(Settings(data_dir=data_dir, oscar_weights=second_model,
                                oscar_migration_weights=str(hasher.api.SHIPPED_WEIGHTS)))
    try:
        query = benign_reshare(images[PHOTOS[0]])
        before = svc.lookup.lookup(query)
        assert before.verdict == "match" and before.record_cid == cids[PHOTOS[0]], before.explanation
        assert before.model == new.model_id
        best = next(c for c in before.candidates if c.record_cid == cids[PHOTOS[0]])
        assert "oscar-net" in best.channels and channel not in best.channels
        assert best.distance is None  # no code of the second model yet: never a distance across models

        later = svc.pipeline.ingest(images[NEW_PHOTO], publisher="acme", metadata=PublisherMetadata(title="new"))
        with svc.ledger.reader.connect() as conn:
            signed = parse_record(svc.ledger.store.get(conn, later.cid).record_bytes)
        oscar = next(h for h in signed.record.hashes if h.alg == "oscar-net")
        assert oscar.model_id == new.model_id
        assert svc.lookup.index.code_of(channel, later.cid) == oscar.value
        assert svc.lookup.index.entry("oscar-net", later.cid) is None

        with svc.ledger.reader.connect() as conn:
            records = {cid: svc.ledger.store.get(conn, cid).record_bytes for cid in cids.values()}
            log = (svc.ledger.log.size(conn), svc.ledger.log.root(conn))

        runner = CliRunner()
        root = root_with(Settings(data_dir=data_dir))
        out = runner.invoke(root, ["index", "rebuild", "--rehash", "--weights", str(second_model), "--json"])
        assert out.exit_code == 0, out.output
        report = json.loads(out.stdout[out.stdout.index("{\n"):])  # after the log lines CliRunner mixes in
        assert (report["channel"], report["model_id"], report["sources"]) == (channel, new.model_id, ["oscar-net"])
        assert (report["rehashed"], report["already"], report["failed"], report["complete"]) == (3, 0, [], True)
        assert (data_dir / "index" / f"{channel}.faissbin").is_file()

        with svc.ledger.reader.connect() as conn:  # nothing signed changed
            assert {cid: svc.ledger.store.get(conn, cid).record_bytes for cid in cids.values()} == records
            assert (svc.ledger.log.size(conn), svc.ledger.log.root(conn)) == log
        for rel in PHOTOS[:3]:  # each stored image's code under the second model, computed independently
            assert svc.lookup.index.code_of(channel, cids[rel]) == new.hash(images[rel]).hex
            assert svc.lookup.index.code_of("oscar-net", cids[rel]) is not None
        assert svc.lookup.index.entry(channel, gone) is None and svc.lookup.withdrawn_at(gone) is not None

        after = svc.lookup.lookup(query)
        assert after.verdict == "match" and after.record_cid == cids[PHOTOS[0]], after.explanation
        best = next(c for c in after.candidates if c.record_cid == cids[PHOTOS[0]])
        assert {"oscar-net", channel} <= set(best.channels)
        assert best.distance == _hamming(new.hash(query).hex, new.hash(images[PHOTOS[0]]).hex)

        fresh = svc.lookup.lookup(benign_reshare(images[NEW_PHOTO]))
        assert fresh.verdict == "match" and fresh.record_cid == later.cid, fresh.explanation

        again = runner.invoke(root, ["index", "rebuild", "--rehash", "--weights", str(second_model)])
        assert again.exit_code == 0 and "0 re-hashed, 3 already there, 0 failed, from oscar-net" in again.stdout
    finally:
        svc.close()
