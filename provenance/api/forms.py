"""Multipart forms whose text fields keep the evidence of bytes that are not UTF-8.

Starlette decodes a text field that is not valid UTF-8 as Latin-1 instead, silently: a client's broken bytes would
reach the signed record as mojibake, and nothing downstream could tell. Here such bytes decode with
``surrogateescape``, i.e. to lone surrogates, which no valid text contains, so the field's validator (e.g.
``provenance.api.schemas.MetadataIn``) refuses it with a 422 that says so. Everything else is Starlette's parser.
"""

from __future__ import annotations

from contextlib import aclosing

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

__all__ = ["parse_multipart"]


class _Utf8TextParser(MultiPartParser):
    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None and self._charset == "utf-8":  # the default charset of a form
            self.items.append((part.field_name, bytes(part.data).decode("utf-8", "surrogateescape")))
        else:
            super().on_part_end()


async def parse_multipart(request: Request, *, max_files: int, max_fields: int) -> FormData:
    """``request.form(max_files=..., max_fields=...)`` for ``multipart/form-data``, with undecodable text kept
    detectable (see the module docstring). Malformed forms get Starlette's 400."""
    try:
        async with aclosing(request.stream()) as stream:
            form = await _Utf8TextParser(request.headers, stream, max_files=max_files, max_fields=max_fields).parse()
    except MultiPartException as exc:
        raise HTTPException(status_code=400, detail=exc.message) from None
    request._form = form  # Request.close() closes the form's files, as for request.form()
    return form
