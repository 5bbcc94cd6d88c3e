"""``provenance client``: the newsroom side. Keys stay on this machine; only statements and images travel.

Also runnable as ``python -m provenance.client`` (that path imports nothing heavy: no torch, OpenCV or faiss).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from provenance.client.keys import generate_key, load_private_key, write_key_pair
from provenance.client.submit import ClientError, Submitter
from provenance.errors import InvalidInputError
from provenance.metadata import PublisherMetadata
from provenance.statements import key_id_for

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp"}


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES))
        else:
            out.append(path)
    return out


def _meta(pairs: tuple[str, ...]) -> PublisherMetadata:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: use KEY=VALUE", param_hint="--meta")
        if key in out:
            raise click.BadParameter(f"{key!r} given twice", param_hint="--meta")
        out[key] = value
    return PublisherMetadata.from_pairs(out)


_server = click.option("--server", required=True, envvar="PROVENANCE_SERVER", help="Base URL of the service.")
_api_key = click.option("--api-key", required=True, envvar="PROVENANCE_API_KEY",
                        help="The publisher's HTTP API key (env PROVENANCE_API_KEY).")
_key = click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
                    help="The publisher's Ed25519 private key (from `client keygen`).")


@click.group()
def client() -> None:
    """The newsroom side: keygen, sign and submit images, rotate/revoke keys, withdraw records."""


@client.command("keygen")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def keygen(out: Path) -> None:
    """Write OUT (Ed25519 private key, PKCS#8 PEM, mode 0600) and OUT.pub (public key, PEM); print the key id.
    Register OUT.pub with the service (`provenance publishers add NAME --public-key OUT.pub`)."""
    key = generate_key()
    pub = write_key_pair(out, key)
    click.echo(f"private key: {out} (keep it here; never send it)")
    click.echo(f"public key:  {pub}")
    click.echo(key_id_for(key.public_key()))


@client.command("submit")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_server
@_api_key
@_key
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help="Metadata, repeatable.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per image.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results (JSON lines) to this file.")
def submit(paths: tuple[Path, ...], server: str, api_key: str, key_path: Path, meta: tuple[str, ...],
           as_json: bool, out: Path | None) -> None:
    """Sign a statement for each image (sha256, CID, media type, metadata, key id, time), upload image and
    statement, wait for the records, print each record CID. Exit 1 when any image failed."""
    key = load_private_key(key_path)
    metadata = _meta(meta)
    files = _expand(paths)
    submitter = Submitter(server, api_key, key)
    try:
        with click.progressbar(length=len(files), label="upload", file=sys.stderr) as bar:
            results = submitter.submit(files, metadata, progress=bar.update)
    finally:
        submitter.close()
    lines = [json.dumps(r.to_obj(), sort_keys=True) for r in results]
    for r, line in zip(results, lines):
        if as_json:
            click.echo(line)
        elif r.error:
            click.echo(f"FAILED {r.path}: {r.error}")
        else:
            click.echo(f"{r.record_cid}  {r.path}{'  (already registered)' if r.duplicate else ''}")
    if out is not None:
        out.write_text("".join(line + "\n" for line in lines))
    sys.exit(1 if any(r.error for r in results) else 0)


@client.command("rotate")
@_server
@_api_key
@_key
@click.option("--new-key", "new_key_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The new private key (from `client keygen`); the event carries only its public half.")
def rotate(server: str, api_key: str, key_path: Path, new_key_path: Path) -> None:
    """Replace --key by --new-key: a key-rotation event signed by the old key, appended to the log."""
    from provenance import keyevents

    old, new = load_private_key(key_path), load_private_key(new_key_path)
    submitter = Submitter(server, api_key, old)
    try:
        event = keyevents.rotation(submitter.publisher, key_id_for(old.public_key()), new.public_key(),
                                   "publisher", old)
        click.echo(json.dumps(submitter.post_event(event.to_bytes()), sort_keys=True))
    finally:
        submitter.close()


@client.command("revoke")
@_server
@_api_key
@_key
@click.option("--key-id", default=None, help="The key to revoke (default: --key itself).")
@click.option("--revoked-at", default=None, help="RFC 3339 UTC time from which it is revoked (default: now).")
@click.option("--reason", default="", help="Why (kept in the log).")
def revoke(server: str, api_key: str, key_path: Path, key_id: str | None, revoked_at: str | None,
           reason: str) -> None:
    """Revoke a key of this publisher: a key-revocation event signed by --key, appended to the log."""
    from provenance import keyevents

    key = load_private_key(key_path)
    submitter = Submitter(server, api_key, key)
    try:
        event = keyevents.revocation(submitter.publisher, key_id or key_id_for(key.public_key()), key,
                                     revoked_at=revoked_at, reason=reason)
        click.echo(json.dumps(submitter.post_event(event.to_bytes()), sort_keys=True))
    finally:
        submitter.close()


@client.command("withdraw")
@click.argument("record_cid")
@_server
@_api_key
@_key
@click.option("--reason", default="", help="Why (kept in the log).")
def withdraw(record_cid: str, server: str, api_key: str, key_path: Path, reason: str) -> None:
    """Withdraw RECORD_CID: a record-withdrawal event signed by --key, appended to the log. The record stays in the
    log and auditable; lookups say it was withdrawn and when; its image is no longer served."""
    from provenance import keyevents

    key = load_private_key(key_path)
    submitter = Submitter(server, api_key, key)
    try:
        event = keyevents.withdrawal(submitter.publisher, record_cid, key, reason=reason)
        click.echo(json.dumps(submitter.post_event(event.to_bytes()), sort_keys=True))
    finally:
        submitter.close()


def main() -> None:
    try:
        client.main(standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except (ClientError, InvalidInputError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3)
