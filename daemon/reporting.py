"""Queries shared by the digest and the export: current submissions and their files.

A sender may send a form again to correct it. For each form, the passed file of
the newest message from the same submitter replaces that submitter's earlier
ones: the export holds only its rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from daemon.store import FileRecord, Submission


@dataclass(frozen=True)
class Entry:
    """A passed file with the submission it came in."""

    submission: Submission
    file: FileRecord


def submitter_key(submission: Submission) -> str:
    """Who a submission is from: the matched city, the forwarded sender or the sender."""
    return submission.submitter or submission.forwarded_from or submission.sender


def current_submissions(session: Session) -> list[Submission]:
    query = (
        select(Submission).where(Submission.current.is_(True))
        .options(selectinload(Submission.files), selectinload(Submission.problems),
                 selectinload(Submission.decision), selectinload(Submission.message))
        .order_by(Submission.received_at, Submission.id)
    )
    return list(session.execute(query).scalars())


def latest_passed(submissions: list[Submission], form_id: str) -> list[Entry]:
    """Return, per submitter, the passed files of `form_id` from its newest message."""
    newest: dict[str, Submission] = {}
    for submission in submissions:
        if any(f.form_id == form_id and f.status == "passed" for f in submission.files):
            key = submitter_key(submission)
            if key not in newest or submission.received_at >= newest[key].received_at:
                newest[key] = submission

    entries = []
    for submission in sorted(newest.values(), key=lambda s: (s.received_at, s.id)):
        for record in submission.files:
            if record.form_id == form_id and record.status == "passed":
                entries.append(Entry(submission=submission, file=record))
    return entries
