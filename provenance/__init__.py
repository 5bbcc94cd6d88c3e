"""Image provenance ledger: signed records, content addressing, a Merkle transparency log, chain anchoring, audit."""

__all__ = ["__version__"]
__version__ = "0.1.0"
