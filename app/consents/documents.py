"""The signed consent form: accepted by what the bytes are, not by what the client says."""

from __future__ import annotations

_SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)


def sniff_media_type(content: bytes) -> str | None:
    """The media type the content's magic bytes prove, or ``None``."""
    for magic, media_type in _SIGNATURES:
        if content.startswith(magic):
            return media_type
    return None


EXTENSIONS = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}
