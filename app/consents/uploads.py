"""Reading the signed form off a request, only once the caller may store it: as the raw
body (PDF, PNG or JPEG), or as ``multipart/form-data`` with the file in the field ``file``
(what a browser front-end sends). Either way at most the size cap is taken in."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from app.errors import PayloadTooLarge, ValidationFailed

# Room for a multipart envelope around a form of the largest size (boundaries, headers).
ENVELOPE = 16 * 1024


async def _capped(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The document exceeds {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def _once(raw: bytes) -> AsyncGenerator[bytes, None]:
    yield raw


async def read_upload(request: Request, limit: int) -> bytes:
    """The form's bytes; 413 beyond ``limit``, 422 for a multipart body without a file in
    ``file`` (or with more than one part)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "multipart/form-data":
        return await _capped(request, limit)
    raw = await _capped(request, limit + ENVELOPE)
    parser = MultiPartParser(
        request.headers, _once(raw), max_files=1, max_fields=0, max_part_size=limit
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ValidationFailed.for_field("body.file", str(exc)[:200], "multipart") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ValidationFailed.for_field(
            "body.file", "Send the signed form in the multipart field 'file'.", "missing"
        )
    content = await upload.read()
    await upload.close()
    if len(content) > limit:
        raise PayloadTooLarge(f"The document exceeds {limit} bytes.")
    return content
