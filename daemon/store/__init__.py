"""Persistence through SQLAlchemy 2: SQLite by default, PostgreSQL for larger offices."""

from daemon.store.database import Database
from daemon.store.models import (
    Base, Decision, FileRecord, MailboxPosition, OutboxItem, Problem, ReportSection, RowRecord,
    StoredMessage, Submission,
)

__all__ = [
    "Base", "Database", "Decision", "FileRecord", "MailboxPosition", "OutboxItem", "Problem",
    "ReportSection", "RowRecord", "StoredMessage", "Submission",
]
