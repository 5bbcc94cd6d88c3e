"""Witnesses (C2SP ``tlog-witness``): independent parties that cosign our checkpoints only when each one is
consistent with the last one they cosigned, so a log that shows different histories to different people is caught.

The witness side (a separate process, ``provenance witness serve``):

* :mod:`.protocol` — the ``add-checkpoint`` wire format (pure);
* :mod:`.state` — the state machine: per log, the last cosigned (size, root), and the rule for the next (pure);
* :mod:`.store` — its persisted state: atomic, fsync'd, locked;
* :mod:`.service` — state machine + store + key under one lock; :mod:`.app` — the HTTP app; :mod:`.cli` — the CLI.

The log side: :mod:`.client` asks the configured witnesses in parallel and verifies what they return; the ledger
publishes or anchors a checkpoint only with a quorum of cosignatures (:mod:`provenance.translog.cosignature`).
"""

from __future__ import annotations
