"""Open the store and hand out sessions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daemon.errors import StoreError
from daemon.store.models import Base

log = logging.getLogger(__name__)


class Database:
    """An engine and a session factory for one store URL."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as err:
            raise StoreError(f"[store] url = {url!r} 不是有效的 SQLAlchemy 地址，例如 sqlite:///data/intake.db。") from err

        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)

        try:
            self.engine: Engine = create_engine(parsed, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError, ImportError) as err:
            raise StoreError(f"无法打开存储 {parsed.render_as_string(hide_password=True)}：{err}") from err

        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_schema(self) -> None:
        """Create the tables that do not exist yet."""
        # NOTE: tables are created, never migrated; a schema change needs a migration tool.
        try:
            Base.metadata.create_all(self.engine)
            inspector = inspect(self.engine)
            for table in Base.metadata.sorted_tables:
                present = {column["name"] for column in inspector.get_columns(table.name)}
                missing = [column.name for column in table.columns if column.name not in present]
                if missing:
                    raise StoreError(f"存储中的表 {table.name} 缺少列 {'、'.join(missing)}：它由旧版本的 intake 创建。"
                                     f"请备份后删除该数据库（默认是 data/intake.db）再运行，或手工添加这些列。")
        except OperationalError as err:
            raise StoreError(f"无法连接或初始化存储：{err.orig}") from err

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = connection.cursor()
    # WAL lets the digest read while a poll writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
