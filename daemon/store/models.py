"""Tables of the store.

The raw message comes first and is never changed. Each parse of it makes a
Submission version; only the newest version is current, so `intake reparse`
replaces what the digest and the export show without losing the history.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, Text,
    TypeDecorator, UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC; SQLite drops the zone, so it is put back."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class MailboxPosition(Base):
    """How far a mailbox has been read: UIDVALIDITY and the highest UID archived."""

    __tablename__ = "mailbox_positions"

    mailbox: Mapped[str] = mapped_column(String(500), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StoredMessage(Base):
    """A raw message as fetched, archived before anything else happens to it."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("mailbox", "source_key", name="uq_messages_source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(500))
    #: "<uidvalidity>:<uid>" for IMAP, the file key for a Maildir.
    source_key: Mapped[str] = mapped_column(String(300))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    #: Null only for a duplicate, whose bytes are those of `duplicate_of`.
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: new, processed, failed or duplicate.
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    #: Failed processing attempts; a failed message is retried until the configured maximum.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))

    submissions: Mapped[list[Submission]] = relationship(back_populates="message", order_by="Submission.version")


class Submission(Base):
    """One parse of a stored message: who sent it and what it held."""

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    current: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    sender: Mapped[str] = mapped_column(String(320), index=True)
    sender_name: Mapped[str] = mapped_column(String(500), default="")
    reply_to: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    #: The expected submitter (a city department) this mail was matched to, if any.
    submitter: Mapped[str] = mapped_column(String(200), default="")
    forwarded_from: Mapped[str] = mapped_column(String(320), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    message: Mapped[StoredMessage] = relationship(back_populates="submissions")
    decision: Mapped[Decision | None] = relationship(back_populates="submission", uselist=False)
    files: Mapped[list[FileRecord]] = relationship(back_populates="submission", order_by="FileRecord.id")
    problems: Mapped[list[Problem]] = relationship(back_populates="submission", order_by="Problem.id")


class Decision(Base):
    """The verdict on one submission; at most one reply is queued for it."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), unique=True)
    decision: Mapped[str] = mapped_column(String(20), index=True)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    ignore_reason: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    submission: Mapped[Submission] = relationship(back_populates="decision")


class FileRecord(Base):
    """One file of a submission (archive members are files of their own)."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(30))
    form_id: Mapped[str | None] = mapped_column(String(50), index=True)
    #: passed, returned or skipped.
    status: Mapped[str] = mapped_column(String(20))
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    sheet: Mapped[str] = mapped_column(String(200), default="")
    unit: Mapped[str] = mapped_column(String(500), default="")
    row_count: Mapped[int] = mapped_column(Integer, default=0)

    submission: Mapped[Submission] = relationship(back_populates="files")
    rows: Mapped[list[RowRecord]] = relationship(back_populates="file", order_by="RowRecord.excel_row")
    sections: Mapped[list[ReportSection]] = relationship(back_populates="file", order_by="ReportSection.position")


class RowRecord(Base):
    """One data row of a table form: normalised values and the cells as sent."""

    __tablename__ = "rows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), index=True)
    form_id: Mapped[str] = mapped_column(String(50), index=True)
    excel_row: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    original: Mapped[dict[str, Any]] = mapped_column(JSON)

    file: Mapped[FileRecord] = relationship(back_populates="rows")


class ReportSection(Base):
    """The text of one section of a report."""

    __tablename__ = "report_sections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    heading: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)

    file: Mapped[FileRecord] = relationship(back_populates="sections")


class Problem(Base):
    """A finding about a submission, with the message the submitter reads."""

    __tablename__ = "problems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    code: Mapped[str] = mapped_column(String(50), index=True)
    severity: Mapped[str] = mapped_column(String(10))
    file: Mapped[str] = mapped_column(Text, default="")
    sheet: Mapped[str] = mapped_column(String(200), default="")
    row: Mapped[int] = mapped_column(Integer, default=0)
    column: Mapped[str] = mapped_column(String(200), default="")
    value: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str] = mapped_column(Text)

    submission: Mapped[Submission] = relationship(back_populates="problems")


class OutboxItem(Base):
    """A rendered email waiting to be sent, or the record of its sending."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: reply or digest.
    purpose: Mapped[str] = mapped_column(String(20), default="reply")
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"), unique=True)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(998))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    #: queued, sent or failed (failed after the last attempt).
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
