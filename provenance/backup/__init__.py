"""Backup and restore of a whole deployment's state in one archive (``provenance backup OUT`` /
``provenance restore IN``): see :mod:`provenance.backup.service` and docs/backup.md."""

from provenance.backup.service import MIN_PASSPHRASE_CHARS, make_backup, restore_backup

__all__ = ["MIN_PASSPHRASE_CHARS", "make_backup", "restore_backup"]
