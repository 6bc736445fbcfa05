"""Seed the baseline's database: its tables, users and items; write a token and item ids.

    python bench/baseline/seed.py DATABASE_URL OUT.json [--users 1000] [--items 20000]

The reader the bench drives owns every item it reads (the template's owner check passes),
as the police's reads of Samverkan are all permitted reads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from sqlmodel import Session, SQLModel, create_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.baseline.app import ALGORITHM, SECRET_KEY, Item, User


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=20_000)
    args = parser.parse_args()
    os.environ["BASELINE_DATABASE_URL"] = args.url
    engine = create_engine(args.url)
    SQLModel.metadata.create_all(engine)
    users = [
        User(email=f"user{i}@example.org", hashed_password="x" * 60, full_name=f"User {i}")
        for i in range(args.users)
    ]
    reader = users[0]
    with Session(engine) as session:
        session.add_all(users)
        session.flush()
        items = [
            Item(
                title=f"Item {i}",
                description="A thing.",
                owner_id=reader.id if i % 2 == 0 else users[i % len(users)].id,
            )
            for i in range(args.items)
        ]
        session.add_all(items)
        session.commit()
        readable = [str(item.id) for item in items if item.owner_id == reader.id][:5000]
        reader_id = str(reader.id)
    token = jwt.encode(
        {"exp": datetime.now(UTC) + timedelta(days=8), "sub": reader_id},
        SECRET_KEY,
        algorithm=ALGORITHM,
    )
    args.out.write_text(json.dumps({"token": token, "items": readable}))


if __name__ == "__main__":
    main()
