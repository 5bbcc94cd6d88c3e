"""Audits that need nothing of ours: :mod:`.tiles_audit` checks the log from its public C2SP tiles, the record
blobs (a CAR file or IPFS) and the chain; :mod:`.sources` and :mod:`.chain` are the thin readers under it;
:mod:`.cli` is ``provenance audit --from-tiles``."""
