"""The witnesses a log asks to cosign: ``PROVENANCE_WITNESSES`` (comma-separated ``URL=VKEY``), parsed. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from provenance.errors import ConfigError, CosignatureError
from provenance.translog.cosignature import WitnessKey, parse_witness_vkey

__all__ = ["WitnessEndpoint", "parse_witnesses"]


@dataclass(frozen=True, slots=True)
class WitnessEndpoint:
    """A configured witness: where to reach it (its submission prefix), and the key its cosignatures must verify
    under."""

    url: str
    key: WitnessKey

    @property
    def label(self) -> str:
        """``name+hexid``: how the log remembers this witness's last cosigned size."""
        return self.key.label


def _endpoint(item: str) -> WitnessEndpoint:
    # A verifier key's base64 (33 bytes) never holds '=', so the last '=' that leaves a parseable key splits it.
    pos = len(item)
    last_error: CosignatureError | None = None
    while (pos := item.rfind("=", 0, pos)) != -1:
        url, vkey = item[:pos].strip(), item[pos + 1 :].strip()
        try:
            key = parse_witness_vkey(vkey)
        except CosignatureError as exc:
            last_error = exc
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"witness URL must be http(s)://host[:port][/prefix], got {url!r}")
        return WitnessEndpoint(url.rstrip("/"), key)
    detail = f": {last_error}" if last_error is not None else ""
    raise ConfigError(f"witness must be URL=VKEY (VKEY from 'provenance witness keygen'), got {item!r}{detail}")


def parse_witnesses(text: str | None) -> tuple[WitnessEndpoint, ...]:
    """``URL=VKEY,URL=VKEY,...`` → endpoints; empty or None → none. Duplicate keys are refused."""
    if not text or not text.strip():
        return ()
    out = tuple(_endpoint(item) for item in text.split(",") if item.strip())
    labels = [e.label for e in out]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ConfigError(f"witness key(s) configured more than once: {', '.join(dupes)}")
    return out
