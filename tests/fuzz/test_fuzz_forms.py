"""The multipart parser of the upload routes (``provenance.api.forms.parse_multipart``) on mutated real forms (the
boundary, part headers, CRLFs, charsets and the Content-Type header changed; bytes cut, flipped, inserted), and the
``metadata`` field's parser (``schemas.parse_metadata_json``) on mutated real metadata and on arbitrary text.
The parser may answer a form or Starlette's 400 only; the metadata parser ``InvalidMetadataError`` only."""

from __future__ import annotations

from tests.conftest import run_isolated

import asyncio
import json

from hypothesis import example, given
from hypothesis import strategies as st
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from provenance.api.forms import parse_multipart
from provenance.api.schemas import parse_metadata_json
from provenance.errors import InvalidMetadataError
from tests.fuzz.conftest import FuzzStats, budget
from tests.fuzz.mutations import mutate_bytes, mutated_json
from tests.provenance.api.fakes import textured_image

BOUNDARY = "----fuzzboundary7MA4YWxkTrZu0gW"
METADATA = {"title": "Harbour at dawn", "author": "A. Photographer", "capture_time": "2024-05-01T06:12:00Z",
            "extra": {"desk": "photo", "caption": "Fishing boats \u2014 early"}}


def _form(metadata: str, image: bytes) -> bytes:
    b = BOUNDARY.encode()
    return (b"--" + b + b'\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n' + metadata.encode() +
            b"\r\n--" + b + b'\r\nContent-Disposition: form-data; name="file"; filename="photo.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + image + b"\r\n--" + b + b"--\r\n")


FORM = _form(json.dumps(METADATA), textured_image(3, (24, 16)))
CONTENT_TYPES = (f"multipart/form-data; boundary={BOUNDARY}", "multipart/form-data", "multipart/form-data; boundary=",
                 f'multipart/form-data; boundary="{BOUNDARY}"; charset=latin-1', "multipart/form-data; boundary=x",
                 f"multipart/form-data; boundary={BOUNDARY * 3}", "multipart/form-data; boundary=\u00e9\u00e9")


@st.composite
def mutated_form(draw: st.DrawFn) -> bytes:
    """The real form with a few byte-level mutations, biased to its boundary and part headers."""
    return mutate_bytes(draw, FORM, max_ops=4, hot=(0, 200))


async def _parse(body: bytes, content_type: str) -> None:
    chunks = [body[i:i + 4096] for i in range(0, len(body), 4096)] or [b""]

    async def receive() -> dict[str, object]:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    headers = [(b"content-type", content_type.encode("utf-8", "surrogateescape")),
               (b"content-length", str(len(body)).encode())]
    request = Request({"type": "http", "method": "POST", "path": "/v1/assets", "headers": headers,
                       "query_string": b""}, receive)
    form = await parse_multipart(request, max_files=1, max_fields=4)
    try:
        for _, value in form.multi_items():
            if isinstance(value, UploadFile):
                await value.read()
            else:
                try:
                    parse_metadata_json(value)
                except InvalidMetadataError:
                    pass
    finally:
        await form.close()


def test_fuzz_multipart_forms(fuzz_stats: FuzzStats) -> None:
    @budget(250)
    @given(body=st.one_of(mutated_form(), st.binary(max_size=300)),
           content_type=st.one_of(st.sampled_from(CONTENT_TYPES), st.text(max_size=60).map(
               lambda t: "multipart/form-data; " + t)))
    @example(body=FORM.replace(b"Harbour", b"Harb\xffour"), content_type=CONTENT_TYPES[0])
    def run(body: bytes, content_type: str) -> None:
        fuzz_stats.run("multipart", lambda: run_isolated(_parse(body, content_type)), (HTTPException,),
                       given=(body[:200], content_type))

    run()


def test_fuzz_metadata_field(fuzz_stats: FuzzStats) -> None:
    @budget(300)
    @given(text=st.one_of(mutated_json({"m": METADATA}).map(lambda b: b.decode("utf-8", "surrogateescape")),
                          st.text(max_size=80)))
    @example(text='{"title": ' + "9" * 5000 + "}")
    @example(text='{"title": "\\ud800"}')
    def run(text: str) -> None:
        fuzz_stats.run("metadata", lambda: parse_metadata_json(text), (InvalidMetadataError,), given=text)

    run()
