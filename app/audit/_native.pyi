"""app/audit/_native.c: the chain check over PostgreSQL's binary COPY stream."""

def check(
    data: bytearray,
    spec: tuple[tuple[bytes, int, bool], ...],
    lag_seq: int,
    lag_hash: bytes,
    rows: int,
    stopped: bool,
    found: list[tuple[int, int, int, int]],
    /,
) -> tuple[int, bool, int, bytes, int, bool, bool]: ...
