"""``provenance records proof CID --bundle OUT`` and ``provenance verify BUNDLE`` as a user runs them: separate
processes, verify in an empty directory with no PROVENANCE_ environment (no data directory, no database)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from provenance.config import Settings
from provenance.metadata import PublisherMetadata
from provenance.services import open_ledger
from tests.fixtures.services import ROOT
from tests.provenance.bundle.conftest import HASHES, World, png

BIN = ROOT / ".venv" / "bin" / "provenance"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], env=_env(), cwd=cwd, capture_output=True, text=True, timeout=300)


def test_bundle_written_by_the_log_verifies_with_no_data_directory(world: World, tmp_path: Path) -> None:
    cid = world.cids["rotated"]
    out = tmp_path / "out" / "record.bundle.json"
    out.parent.mkdir()
    made = _run("--data-dir", str(world.data_dir), "records", "proof", cid, "--bundle", str(out), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert f"record {cid}" in made.stdout and "2 key event(s)" in made.stdout
    assert out.read_bytes() == world.bundles["rotated"].to_json()  # the same bytes as the in-process builder

    empty = tmp_path / "elsewhere"
    empty.mkdir()
    image = tmp_path / "out" / "image.png"
    image.write_bytes(world.images["rotated"])
    ok = _run("verify", str(out), "--image", str(image), cwd=empty)
    assert ok.returncode == 0, ok.stderr
    assert f"OK: bundle verifies: record {cid}" in ok.stdout and "trusted on first use" in ok.stdout
    as_json = _run("verify", str(out), "--log-key", world.log_key, "--json", cwd=empty)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["ok"] and report["log_key_trust"] == "given" and report["custody"] == "publisher"
    assert {c["check"] for c in report["checks"]} >= {"checkpoint.signature", "record.inclusion", "key_history",
                                                      "statement.signature", "attestation.signature"}
    wrong = _run("verify", str(out), "--image", str(tmp_path / "out" / "missing.png"), "--json", cwd=empty)
    assert wrong.returncode == 1 and json.loads(wrong.stdout)["check"] == "image.file"
    assert list(empty.iterdir()) == []  # verify wrote nothing: no data directory, no database


def test_bundle_of_a_record_not_yet_in_a_checkpoint_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger = open_ledger(Settings(data_dir=data))
    try:
        ledger.add_publisher("acme")
        cid = ledger.ingest(png(21), publisher="acme", metadata=PublisherMetadata(), hashes=HASHES).cid
    finally:
        ledger.close()
    out = tmp_path / "b.json"
    res = _run("--data-dir", str(data), "records", "proof", cid, "--bundle", str(out), cwd=tmp_path)
    assert res.returncode == 3 and "not in a checkpoint yet" in res.stderr
    assert not out.exists() and not list(tmp_path.glob(".b.json*"))
