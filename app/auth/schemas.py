from __future__ import annotations

import uuid

from pydantic import BaseModel, Field


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str | None = Field(
        default=None, description="Only for users; rotated on every use."
    )


class Me(BaseModel):
    id: uuid.UUID
    kind: str = Field(description="`user` or `client`.")
    username: str
    display_name: str
    agency_id: uuid.UUID
    roles: list[str]
    scopes: list[str]
    auth_method: str = Field(
        description="`password`, `client_credentials`, or `oidc:<provider id>` for a token "
        "of an agency's identity provider."
    )
