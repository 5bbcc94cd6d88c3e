"""The newsroom-side client: keys that never leave the publisher, signed statements, uploads.

Light on purpose: it imports no torch, OpenCV, faiss or model weights (a test checks ``sys.modules``), only
``cryptography``, ``httpx``, ``click`` and the pure statement/CID code, so a newsroom's ingest box can run it.
"""

from provenance.client.keys import generate_key, load_private_key, load_public_key, write_key_pair
from provenance.client.statement import build_statement, sniff_media_type
from provenance.client.submit import SubmitResult, Submitter

__all__ = [
    "SubmitResult",
    "Submitter",
    "build_statement",
    "generate_key",
    "load_private_key",
    "load_public_key",
    "sniff_media_type",
    "write_key_pair",
]
