"""How deeply a JSON text nests, counted on its bytes before any parser sees them. Pure, linear, no recursion.

Why: ``json.loads`` recurses once per nesting level. At Python's default recursion limit a document nested a few
thousand deep raises ``RecursionError`` (an exception no parser here documents); once web3's dependencies are
imported the limit is 100,000 and the same document can run the C parser past the thread's stack and kill the
process. So every reader of JSON from outside (HTTP bodies, stored records and key events read back from a block
store, receipts, proof bundles, C2PA's manifest JSON) refuses a document deeper than its bound first, whatever the
recursion limit is. Light: the newsroom client and the offline verifiers import it.
"""

from __future__ import annotations

import re
from itertools import accumulate

__all__ = ["MAX_DOCUMENT_DEPTH", "json_depth"]

#: Deepest nesting accepted in the documents this package signs and reads (records, key events, receipts, bundles,
#: C2PA summaries): none of ours comes near it, and every parser is safe far beyond it.
MAX_DOCUMENT_DEPTH = 64

# A JSON string token: a quote, then anything but quote/backslash, or a backslash escape, up to the closing quote.
# Written without nested quantifiers over overlapping alternatives, so matching is linear (no backtracking blow-up).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = tuple(1 if b in b"[{" else -1 for b in range(256))


def json_depth(data: bytes | str) -> int:
    """The deepest nesting of ``[``/``{`` in ``data``, ignoring brackets inside strings. Linear time, no recursion.

    ASCII bytes never occur inside a multi-byte UTF-8 sequence, so quotes, backslashes and brackets are seen exactly
    as a JSON tokenizer sees them, up to the first point where the text stops being valid JSON, where any parser
    stops too. A ``str`` is counted on its UTF-8 (lone surrogates kept)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)
