"""What a checkpoint's batch publishes for the C2PA federated lookup: one key-value pair per soft binding.

For every record the batch adds and every perceptual hash it carries: key = the hash as a soft binding value
(base64), value = ``{"endpoints": [our Soft Binding Resolution API], "manifestId": the label of the manifest we
sign for the record, "alg": the algorithm's list name}``. ``Ledger.anchor`` sends them in the anchor's own
transaction (``ProvenanceAnchor.anchorWithBindings``). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from provenance.anchor.base import SoftBindingEntry
from provenance.c2pa.federated import resolution_json
from provenance.records import AnyRecord
from provenance.softbinding.algorithms import binding_value, registered_name
from provenance.softbinding.manifest_ids import manifest_id_for

__all__ = ["bindings_for"]


def bindings_for(records: Iterable[tuple[str, AnyRecord]], endpoints: Sequence[str]) -> list[SoftBindingEntry]:
    """The entries of ``(record CID, record)`` pairs, in the order given (log order), hashes in record order."""
    out = []
    for cid, signed in records:
        manifest_id = manifest_id_for(cid)
        for h in signed.record.hashes:
            out.append(SoftBindingEntry(binding_value(h.value),
                                        resolution_json(endpoints, manifest_id, registered_name(h.alg, h.model_id))))
    return out
