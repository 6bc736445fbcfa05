"""The baseline: a plain authenticated CRUD read and create, built the way the canonical
FastAPI project template builds them (github.com/fastapi/full-stack-fastapi-template,
``backend/app``: ``core/db.py``, ``api/deps.py``, ``api/routes/items.py``, ``models.py``).

- SQLModel on a synchronous engine (psycopg 3), one ``Session`` per request (``get_db``);
  the template's engine settings (SQLAlchemy's default pool).
- A PyJWT HS256 access token (``core/security.py``): the ``sub`` is the user's id.
- ``get_current_user``: decode the token, ``session.get(User, sub)``, 404 if none, 400 if
  inactive.
- ``read_item``: ``session.get(Item, id)``, 404 if none, the owner check (400 "Not enough
  permissions" unless superuser), ``response_model=ItemPublic``; ``create_item``:
  ``Item.model_validate(item_in, update={"owner_id": ...})``, add, commit, refresh.
- Sync ``def`` routes, as the template's (run in the threadpool).

Nothing tuned, nothing crippled: no decision, no audit, no consent. Served by bench/run
with the same worker count as Samverkan, on its own database on the same server.

    BASELINE_DATABASE_URL=postgresql+psycopg://... uvicorn bench.baseline.app:app --workers 2
"""

from __future__ import annotations

import os
import uuid
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import OAuth2PasswordBearer
from jwt.exceptions import InvalidTokenError
from pydantic import BaseModel, ValidationError
from sqlmodel import Field, Session, SQLModel, create_engine

SECRET_KEY = os.environ.get("BASELINE_SECRET_KEY", "baseline-secret-key-for-the-bench-only")
ALGORITHM = "HS256"
engine = create_engine(
    os.environ.get("BASELINE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/baseline")
)


# --- models.py ---------------------------------------------------------------------------
class UserBase(SQLModel):
    email: str = Field(unique=True, index=True, max_length=255)
    is_active: bool = True
    is_superuser: bool = False
    full_name: str | None = Field(default=None, max_length=255)


class User(UserBase, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    hashed_password: str


class ItemBase(SQLModel):
    title: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=255)


class ItemCreate(ItemBase):
    pass


class Item(ItemBase, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="user.id", nullable=False, ondelete="CASCADE")


class ItemPublic(ItemBase):
    id: uuid.UUID
    owner_id: uuid.UUID


class TokenPayload(BaseModel):
    sub: str | None = None


# --- api/deps.py -------------------------------------------------------------------------
reusable_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/login/access-token")


def get_db():  # type: ignore[no-untyped-def]  # the template's own shape
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
TokenDep = Annotated[str, Depends(reusable_oauth2)]


def get_current_user(session: SessionDep, token: TokenDep) -> User:
    try:
        payload = jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM])
        token_data = TokenPayload(**payload)
    except (InvalidTokenError, ValidationError):
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail="Could not validate credentials"
        ) from None
    user = session.get(User, token_data.sub)
    if not user:
        raise HTTPException(status_code=404, detail="User not found")
    if not user.is_active:
        raise HTTPException(status_code=400, detail="Inactive user")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


# --- api/routes/items.py -----------------------------------------------------------------
app = FastAPI(title="baseline")


@app.get("/api/v1/items/{id}", response_model=ItemPublic)
def read_item(session: SessionDep, current_user: CurrentUser, id: uuid.UUID) -> Item:
    """Get item by ID."""
    item = session.get(Item, id)
    if not item:
        raise HTTPException(status_code=404, detail="Item not found")
    if not current_user.is_superuser and (item.owner_id != current_user.id):
        raise HTTPException(status_code=400, detail="Not enough permissions")
    return item


@app.post("/api/v1/items/", response_model=ItemPublic)
def create_item(*, session: SessionDep, current_user: CurrentUser, item_in: ItemCreate) -> Item:
    """Create new item."""
    item = Item.model_validate(item_in, update={"owner_id": current_user.id})
    session.add(item)
    session.commit()
    session.refresh(item)
    return item


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
