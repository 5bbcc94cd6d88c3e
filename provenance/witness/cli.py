"""``provenance witness``: run a C2SP ``tlog-witness`` for someone else's log.

* ``keygen OUT [--name NAME]`` writes a new witness private key to OUT (mode 0600, never overwritten) and prints the
  verifier key to hand to the log operator (for ``PROVENANCE_WITNESSES``) and to auditors.
* ``vkey KEY`` prints the verifier key of an existing key file.
* ``serve --key KEY --state DIR --log ORIGIN=VKEY [--log ...] [--host H] [--port P]`` runs the witness.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import click

from provenance.errors import ProvenanceError


def _default_name() -> str:
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "localhost"
    return f"{host}/witness"


def _load_signer(path: Path):  # type: ignore[no-untyped-def]
    from provenance.translog.cosignature import parse_witness_private_key

    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvenanceError(f"cannot read witness key {path}: {exc}") from exc
    return parse_witness_private_key(text)


@click.group()
def witness() -> None:
    """Run a witness that cosigns another log's checkpoints (C2SP tlog-witness)."""


@witness.command("keygen")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Key name, best a schema-less URL you control (e.g. news.example/witness)."
              " Default: <hostname>/witness.")
def witness_keygen(out: Path, name: str | None) -> None:
    """Write a new Ed25519 witness key to OUT (mode 0600) and print its verifier key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from provenance.translog.cosignature import encode_witness_private_key, encode_witness_vkey

    key_name = name or _default_name()
    key = Ed25519PrivateKey.generate()
    text = encode_witness_private_key(key_name, key) + "\n"  # validates the name first
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ProvenanceError(f"{out} exists: a witness key is never overwritten (its state depends on it)") from None
    except OSError as exc:
        raise ProvenanceError(f"cannot create witness key {out}: {exc}") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    click.echo(encode_witness_vkey(key_name, key.public_key()))


@witness.command("vkey")
@click.argument("key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def witness_vkey(key: Path) -> None:
    """Print the verifier key of witness key file KEY."""
    click.echo(_load_signer(key).vkey())


@witness.command("serve")
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Witness private key file (from 'provenance witness keygen').")
@click.option("--state", "state_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory of the witness state (created if missing; back it up, never share it).")
@click.option("--log", "logs", multiple=True, required=True, metavar="ORIGIN=VKEY",
              help="A log to witness: its origin line and its checkpoint verifier key. Repeat for more logs/keys.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=7380, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
def witness_serve(key_path: Path, state_dir: Path, logs: tuple[str, ...], host: str, port: int) -> None:
    """Serve POST /add-checkpoint: cosign each checkpoint consistent with the last one cosigned for its log."""
    import uvicorn

    from provenance.witness.app import create_app
    from provenance.witness.errors import MalformedRequestError
    from provenance.witness.service import Witness
    from provenance.witness.state import parse_log_option, trusted_logs
    from provenance.witness.store import StateDir

    try:
        trusted = trusted_logs(parse_log_option(text) for text in logs)
    except MalformedRequestError as exc:
        raise click.BadParameter(str(exc), param_hint="--log") from exc
    signer = _load_signer(key_path)
    node = Witness(signer, trusted, StateDir(state_dir))
    try:
        click.echo(f"witness {signer.vkey()} on http://{host}:{port} for {', '.join(sorted(trusted))}", err=True)
        uvicorn.run(create_app(node), host=host, port=port, log_config=None, access_log=False, workers=1)
    finally:
        node.close()
