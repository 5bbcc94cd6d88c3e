"""``provenance backup OUT`` and ``provenance restore IN`` (registered on the main CLI group).

The passphrase comes from ``PROVENANCE_BACKUP_PASSPHRASE``; only when stdin is a terminal is it asked for (hidden,
twice for a backup). Without a terminal and without the variable, both commands refuse: a scheduled backup must
never hang on a prompt.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from provenance.errors import BackupPassphraseError


def passphrase_for(settings: Any, *, confirm: bool) -> str:
    secret = settings.backup_passphrase
    if secret is not None and secret.get_secret_value():
        return str(secret.get_secret_value())
    if not sys.stdin.isatty():
        raise BackupPassphraseError("no backup passphrase: set PROVENANCE_BACKUP_PASSPHRASE (stdin is not a "
                                    "terminal, so it is not asked for)")
    return str(click.prompt("Backup passphrase", hide_input=True, confirmation_prompt=confirm))


@click.command("backup")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--include-blocks", is_flag=True,
              help="With an IPFS block store: copy every referenced block into the archive too (a local block "
                   "store's blocks always are). Without it, the archive lists the CIDs to pin.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest (without its member list).")
@click.pass_obj
def backup(state: Any, out: Path, include_blocks: bool, force: bool, as_json: bool) -> None:
    """Back up the database, the block store (or its pins), the keyring (encrypted) and the index catalog to OUT,
    one tar file with a SHA-256 manifest."""
    from provenance.backup import make_backup

    manifest = make_backup(state.settings, out, passphrase_for(state.settings, confirm=True),
                           include_blocks=include_blocks, force=force)
    if as_json:
        click.echo(json.dumps({k: v for k, v in manifest.items() if k != "members"}, indent=2, sort_keys=True))
        return
    led, bs = manifest["ledger"], manifest["blockstore"]
    cp = led["latest_checkpoint"]
    click.echo(f"backup written to {out.resolve()} ({len(manifest['members'])} members, schema "
               f"{manifest['schema_revision']})")
    click.echo(f"  database: {manifest['database']['kind']}; {led['records']} records, log size {led['log_size']}, "
               f"{led['checkpoints']} checkpoints"
               + (f" (latest {cp['tree_size']}, root {cp['root']})" if cp else ""))
    click.echo(f"  block store: {bs['source']}: {bs['blocks']} blocks archived, {bs['pins']} CIDs referenced")
    click.echo(f"  keyring: {manifest['keyring']['files']} key files, encrypted")


@click.command("restore")
@click.argument("archive", metavar="IN", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True,
              help="Restore even into a non-empty data directory (moved aside, not deleted) or a database that "
                   "holds data (provenance's tables are dropped).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def restore(state: Any, archive: Path, force: bool, as_json: bool) -> None:
    """Restore a backup IN into the data directory and database configured here. Refuses a corrupt archive, a
    wrong passphrase and a non-empty target (without --force) before writing anything."""
    from provenance.backup import restore_backup

    report = restore_backup(state.settings, archive, passphrase_for(state.settings, confirm=False), force=force)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        led = report["ledger"]
        cp = led["latest_checkpoint"]
        click.echo(f"restored {archive} into {state.settings.data_dir.resolve()} (schema "
                   f"{report['schema_revision_archived']} -> {report['schema_revision']})")
        click.echo(f"  {led['records']} records, log size {led['log_size']}, {led['checkpoints']} checkpoints"
                   + (f" (latest {cp['tree_size']}, root {cp['root']})" if cp else ""))
        click.echo(f"  {report['key_files']} key files, {report['blocks_restored']} blocks, index "
                   + (", ".join(f"{ch} {n}" for ch, n in sorted(report["index"].items())) or "empty"))
        for path in report["moved_aside"]:
            click.echo(f"  previous contents moved to {path}")
        for warning in report["warnings"]:
            click.echo(f"WARNING: {warning}", err=True)
        click.echo("next: provenance audit")
    if report["missing_cids"] or report["mismatch"]:
        sys.exit(1)
