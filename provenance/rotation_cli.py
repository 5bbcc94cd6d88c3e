"""CLI of service-key rotation (docs/key-rotation.md): ``provenance log rotate-key``, ``provenance log key-history``
and ``provenance chain rotate-anchorer``. Thin shells around :mod:`provenance.rotation`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from provenance.errors import ConfigError

__all__ = ["key_history_command", "rotate_anchorer_command", "rotate_key_command"]


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True))


def _read_hex_key(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} key file {path}: {exc}") from None
    if not text:
        raise ConfigError(f"the {what} key file {path} is empty")
    return text


@click.command("rotate-key")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def rotate_key_command(state: Any, yes: bool, as_json: bool) -> None:
    """Replace the log's signing key (checkpoints, attestations, receipts, operator key events). Appends a
    log-key-rotation event signed by the old and the new key and a transition checkpoint signed by both, then
    retires the old private key. Witness operators add the new key (--log ORIGIN=NEWKEY); see docs/key-rotation.md."""
    from provenance.keyring import Keyring
    from provenance.rotation import rotate_log_key

    settings = state.settings
    if not Keyring(settings.keyring_dir).has_service_key(settings.log_key_name):
        raise ConfigError(f"no log key in {settings.data_dir}: is --data-dir (PROVENANCE_DATA_DIR) the service's "
                          "data directory?")
    if not yes and not as_json:
        click.confirm("Rotate the log key? The old private key is deleted; witnesses and auditors must be given the "
                      "new verifier key", abort=True)
    done = rotate_log_key(state.ledger)
    if as_json:
        _echo_json({"old_key": done.old.encode(), "new_key": done.new.encode(), "event_cid": done.cid,
                    "leaf_index": done.leaf_index, "transition_checkpoint_size": done.transition_size,
                    "witness_error": done.witness_error})
        return
    click.echo(f"log key rotated: {done.old.label} -> {done.new.label} (event {done.cid}, leaf {done.leaf_index})")
    click.echo(f"transition checkpoint of size {done.transition_size} signed by both keys")
    click.echo(f"new verifier key (give it to witnesses and auditors): {done.new.encode()}")
    if done.witness_error:
        click.echo(f"WARNING: witnesses: {done.witness_error}", err=True)
        click.echo("  run `provenance anchor` before anything new is appended, so that they cosign the transition "
                   "checkpoint", err=True)


@click.command("key-history")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def key_history_command(state: Any, as_json: bool) -> None:
    """Every key the log has had, from its log-key rotations: the verifier key and the leaves it is in force for
    (checkpoints of size > FROM, entries at leaves > FROM). Old receipts verify under the key of their time."""
    chain = state.ledger.log_key_chain()
    if as_json:
        _echo_json(chain.to_obj())
        return
    for i, e in enumerate(chain.epochs):
        until = (f"until leaf {chain.epochs[i + 1].from_leaf}" if i + 1 < len(chain.epochs) else "in force now")
        since = "from the start" if e.from_leaf < 0 else f"from leaf {e.from_leaf + 1} (rotation {e.rotation_cid})"
        click.echo(f"{e.key.encode()}  {since}, {until}")


@click.command("rotate-anchorer")
@click.option("--new-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File with the new account's hex private key. Default: a new key is generated.")
@click.option("--owner-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File with the contract owner's hex private key (it signs addAnchorer/removeAnchorer). Default: "
                   "the current anchorer, which is the owner when it deployed the contract.")
@click.option("--owner", "owner_address", default=None, metavar="ADDRESS",
              help="The owner as an account the node unlocks (instead of --owner-key-file).")
@click.option("--fund-wei", type=click.IntRange(min=0), default=0,
              help="Wei the owner sends the new account for its gas (0: fund it yourself first).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def rotate_anchorer_command(state: Any, new_key_file: Path | None, owner_key_file: Path | None,
                            owner_address: str | None, fund_wei: int, as_json: bool) -> None:
    """Replace the chain account that anchors checkpoints: the owner authorises the new account and removes the old
    one, an anchorer-rotation event is logged, and the service anchors with the new key (kept in the keyring,
    where it takes precedence over PROVENANCE_CHAIN_PRIVATE_KEY)."""
    from provenance.rotation import rotate_anchorer

    if owner_key_file is not None and owner_address is not None:
        raise click.UsageError("give --owner-key-file or --owner, not both")
    done = rotate_anchorer(state.ledger, new_key=_read_hex_key(new_key_file, "new anchorer"),
                           owner_key=_read_hex_key(owner_key_file, "owner"), owner_address=owner_address,
                           fund_wei=fund_wei)
    if as_json:
        _echo_json({"old_anchorer": done.old, "new_anchorer": done.new, "add_tx": done.add_tx,
                    "remove_tx": done.remove_tx, "event_cid": done.cid, "leaf_index": done.leaf_index,
                    "chain_id": done.chain_id, "contract": done.contract})
        return
    if done.cid is None:
        click.echo(f"finished an interrupted rotation: the service now anchors as {done.new}")
        return
    click.echo(f"anchorer rotated on chain {done.chain_id} contract {done.contract}: {done.old} -> {done.new}")
    click.echo(f"  addAnchorer {done.add_tx}, removeAnchorer {done.remove_tx}; event {done.cid} at leaf "
               f"{done.leaf_index}")
    click.echo("  the new key is in the keyring; remove the retired key from PROVENANCE_CHAIN_PRIVATE_KEY")
