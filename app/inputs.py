"""Input types that refuse what pydantic's lax mode would quietly convert.

Found by schemathesis: ``"active": 0`` became ``False`` and ``?to=0.5`` became 1970-01-01.
A consent's validity, a search window or an account's state is not something to guess.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictBool

_NUMBER = re.compile(r"\s*[-+]?\d+(\.\d*)?([eE][-+]?\d+)?\s*")


def _rfc3339_only(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("an RFC 3339 date-time is expected, e.g. 2026-11-23T14:00:00Z")
    return value


# An RFC 3339 date-time; never a Unix timestamp. A time without a zone is UTC (the
# services convert it).
Timestamp = Annotated[datetime, BeforeValidator(_rfc3339_only)]

# JSON true or false; never 0, 1, "yes" or "off".
Flag = StrictBool

# A record number of the audit log (PostgreSQL bigint).
AuditSeq = Annotated[int, Field(ge=1, le=2**63 - 1)]
