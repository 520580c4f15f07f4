"""Database plumbing every service uses: one async engine per process, sessions per unit of work."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

T = TypeVar("T")

#: Rows or ids per statement built from a list of unbounded length: asyncpg sends at most 32,767 query arguments, and
#: 1,000 keeps even a 15-column row per item (a check-in) far below that.
STATEMENT_CHUNK = 1_000


def chunks(items: Sequence[T], size: int = STATEMENT_CHUNK) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`, in order (nothing for an empty sequence)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Deterministic constraint names so Alembic migrations are stable across machines.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    """Declarative base for services that map classes; each service should subclass with its own metadata."""

    metadata = new_metadata()


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # a restarted database must not surface as a 500 on the next request
        echo=echo,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: commits on success, rolls back on any exception."""
    async with sessions() as session, session.begin():
        yield session


async def driver_connection(session: AsyncSession) -> asyncpg.Connection[Any]:
    """The session's own asyncpg connection, inside the session's transaction.

    For hot paths (outbox COPY, inbox inserts) where SQLAlchemy's statement and row handling cost more than
    the database work. SQLAlchemy's asyncpg adapter sends BEGIN lazily with its first statement; a statement
    sent to asyncpg before that would autocommit outside the caller's transaction, so one is sent first.
    """
    connection = await session.connection()
    raw: asyncpg.Connection[Any] | None = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    if not raw.is_in_transaction():
        await session.execute(text("SELECT 1"))
    return raw


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The plain libpq-style DSN asyncpg.connect() understands, from a SQLAlchemy URL."""
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def advisory_lock_key(name: bytes) -> int:
    """A stable PostgreSQL advisory-lock key for ``name`` (its namespace first, e.g. ``b"outbox-relay:profiles"``).

    Advisory locks take a signed 64-bit key; hashing the whole name spreads ids whose first bytes agree (a UUIDv7's
    are a timestamp) and keeps lock users with different namespaces apart."""
    return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big", signed=True)
