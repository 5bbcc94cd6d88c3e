"""``provenance audit --from-tiles`` as a user runs it: the real CLI process, with no data directory, against an
exported directory, a real ``provenance serve`` process over HTTP, a CAR from ``provenance export-car``, and
ganache; exit 0 only when everything verifies, 1 (with the failing check named in the JSON) otherwise."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from provenance.anchor.base import log_id_for
from provenance.translog.checkpoint import parse_checkpoint_note
from tests.provenance.tiled_log import BuiltLog, cli, records_ledger, serve


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BuiltLog, Path, Path, str]]:
    root = tmp_path_factory.mktemp("audit-cli")
    built, _records = records_ledger(root / "data", 3)
    tiles, car = root / "tiles", root / "log.car"
    assert cli("--data-dir", str(built.data_dir), "log", "export-tiles", str(tiles)).returncode == 0
    assert cli("--data-dir", str(built.data_dir), "export-car", str(car)).returncode == 0
    pub = base64.b64encode(built.ledger.keyring.publisher_key("acme").public_key().public_bytes_raw()).decode()
    yield built, tiles, car, pub
    built.ledger.close()


def _audit(tmp_path: Path, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    """The CLI as its own process, pointed at a data directory that does not exist (it must stay so)."""
    nowhere = tmp_path / "no-data-dir"
    out = cli("--data-dir", str(nowhere), "audit", "--json", *args)
    assert not nowhere.exists(), "audit --from-tiles must not touch a data directory"
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def _main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """``provenance.cli.main`` in this process (the same exit-code mapping), for the quick cases."""
    from provenance.cli import main

    monkeypatch.setattr(sys, "argv", ["provenance", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    code = exit_.value.code
    return (code if isinstance(code, int) else 0 if code is None else 1), out.out, out.err


def test_audit_from_a_directory_and_from_a_real_server(ledger, tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    built, tiles, car, pub = ledger
    keys = ["--log-key", built.vkey, "--publisher-key", pub]
    rc, report = _audit(tmp_path, "--from-tiles", str(tiles), "--blocks", str(car), *keys)
    assert rc == 0 and report["ok"], report["failures"]
    assert report["records_ok"] == len(report["records"]) == len(built.cids)
    assert {r["signature"] for r in report["records"] if r["kind"] == "record"} == {"verified"}
    with serve(built.data_dir, tmp_path / "serve.log") as url:
        rc, over_http = _audit(tmp_path, "--from-tiles", url, "--blocks", str(car), *keys)
    assert rc == 0 and over_http["ok"], over_http["failures"]
    assert over_http["rebuilt_root"] == report["rebuilt_root"] == report["checkpoint"]["root"]

    bad = tmp_path / "bad"
    shutil.copytree(tiles, bad)
    (bad / "tile/entries/000.p/4").unlink()
    rc, out, _err = _main(capsys, monkeypatch, "audit", "--json", "--from-tiles", str(bad), *keys)
    report = json.loads(out)
    assert rc == 1 and report["failed_checks"] == ["entries.missing"]
    assert report["failures"][0]["subject"] == "tile/entries/000.p/4"
    rc, out, _err = _main(capsys, monkeypatch, "audit", "--from-tiles", str(bad))
    assert rc == 1 and "FAILURE [entries.missing] tile/entries/000.p/4" in out


def test_usage_errors(ledger, tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _built, tiles, _car, _pub = ledger
    rc, _out, err = _main(capsys, monkeypatch, "audit", "--blocks", "x.car", "--witness", "w")
    assert rc == 2 and "--blocks, --witness only apply with --from-tiles" in err
    rc, _out, err = _main(capsys, monkeypatch, "audit", "--from-tiles", str(tiles), "--log-key", "not-a-key")
    assert rc == 2 and "--log-key" in err
    assert _main(capsys, monkeypatch, "audit", "--from-tiles", str(tiles), "--quorum", "1")[0] == 2
    rc, _out, err = _main(capsys, monkeypatch, "audit", "--from-tiles", str(tiles), "--chain-rpc", "http://x")
    assert rc == 2 and "--contract" in err
    rc, _out, err = _main(capsys, monkeypatch, "audit", "--from-tiles", str(tmp_path / "nothing"))
    assert rc == 3 and "no such directory of tiles" in err
    rc, _out, err = _main(capsys, monkeypatch, "audit", "--from-tiles", "http://127.0.0.1:9")
    assert rc == 3 and "127.0.0.1:9" in err


@pytest.mark.evm_rpc
def test_audit_checks_the_anchor_on_ganache(ledger, evm_rpc_url: str, tmp_path: Path, capsys,  # type: ignore[no-untyped-def]
                                            monkeypatch) -> None:
    from provenance.anchor.evm import EvmAnchor

    built, tiles, _car, _pub = ledger
    cp, _ = parse_checkpoint_note((tiles / "checkpoint").read_bytes())
    good, forked = EvmAnchor.deploy_to(evm_rpc_url), EvmAnchor.deploy_to(evm_rpc_url)
    good.anchor(log_id_for(cp.origin), cp.size, cp.root)
    forked.anchor(log_id_for(cp.origin), cp.size, hashlib.sha256(b"another history").digest())
    chain = ["--from-tiles", str(tiles), "--log-key", built.vkey, "--chain-rpc", evm_rpc_url]
    rc, out, _err = _main(capsys, monkeypatch, "audit", "--json", *chain, "--contract", good.contract_address)
    report = json.loads(out)
    assert rc == 0 and [a["status"] for a in report["anchors"]] == ["verified"], report["failures"]
    rc, report = _audit(tmp_path, *chain, "--contract", forked.contract_address)
    assert rc == 1 and report["failed_checks"] == ["anchor.root"]
    assert report["failures"][0]["subject"] == f"tree size {cp.size}"
