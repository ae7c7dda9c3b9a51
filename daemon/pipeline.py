"""Archive raw messages, then parse, check, decide and queue the reply.

Two steps with a commit between them: a message is archived (raw bytes, sha256,
mailbox position) before it is parsed, so whatever fails later it can be run
again from the store with `intake reparse`. The decision and its reply enter the
store in one transaction.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from daemon.config import Settings
from daemon.mailbox import Fetched, Source
from daemon.replies import ReplyRenderer
from daemon.store import (
    Database, Decision, FileRecord, MailboxPosition, OutboxItem, Problem, ReportSection, RowRecord,
    StoredMessage, Submission,
)
from parsers.mime import ParsedMessage, parse_message
from rules.campaign import Campaign
from rules.evaluate import IGNORED, Evaluation, evaluate
from rules.findings import Finding, size_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processed:
    """The outcome of processing one stored message, for the command line's summary."""

    message_pk: int
    message_id: str
    decision: str
    late: bool
    reply_to: str
    counts: dict[str, int]


class Ledger:
    """The store's record of what each mailbox has delivered (implements Position)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, mailbox: str) -> tuple[int, int] | None:
        position = self.session.get(MailboxPosition, mailbox)
        return (position.uidvalidity, position.last_uid) if position else None

    def seen(self, mailbox: str, source_key: str) -> bool:
        query = select(StoredMessage.id).where(StoredMessage.mailbox == mailbox, StoredMessage.source_key == source_key)
        return self.session.execute(query).first() is not None


def archive_new(database: Database, source: Source) -> int:
    """Archive every message the source has not delivered before; return how many."""
    count = 0
    with database.session() as reader:
        ledger = Ledger(reader)
        for fetched in source.fetch_new(ledger):
            with database.session() as session:
                archive_one(session, source.name, fetched)
            count += 1
    return count


def archive_one(session: Session, mailbox: str, fetched: Fetched) -> StoredMessage:
    """Store one raw message and advance the mailbox position in the same transaction.

    A message whose bytes and Message-ID were archived before (a second copy, or
    the same mail seen again after a UIDVALIDITY change) is recorded as a duplicate
    and never processed again.
    """
    digest = hashlib.sha256(fetched.raw).hexdigest()
    message_id = _header_message_id(fetched.raw)
    existing = session.execute(
        select(StoredMessage).where(StoredMessage.mailbox == mailbox, StoredMessage.source_key == fetched.source_key)
    ).scalar_one_or_none()
    if existing is not None:
        return existing

    earlier = session.execute(
        select(StoredMessage).where(StoredMessage.sha256 == digest, StoredMessage.message_id == message_id,
                                    StoredMessage.duplicate_of.is_(None)).limit(1)
    ).scalar_one_or_none()

    stored = StoredMessage(
        mailbox=mailbox, source_key=fetched.source_key, uidvalidity=fetched.uidvalidity, uid=fetched.uid,
        message_id=message_id, sha256=digest, size=len(fetched.raw),
        raw=None if earlier else fetched.raw,
        received_at=fetched.received_at or _fallback_received(fetched.raw),
        status="duplicate" if earlier else "new",
        duplicate_of=earlier.id if earlier else None,
    )
    session.add(stored)

    if fetched.uidvalidity is not None and fetched.uid is not None:
        position = session.get(MailboxPosition, mailbox)
        if position is None or position.uidvalidity != fetched.uidvalidity:
            session.merge(MailboxPosition(mailbox=mailbox, uidvalidity=fetched.uidvalidity, last_uid=fetched.uid))
        elif fetched.uid > position.last_uid:
            position.last_uid = fetched.uid

    session.flush()
    log.info("archived message pk=%s mailbox=%s key=%s message_id=%s%s", stored.id, mailbox,
             fetched.source_key, message_id, " (duplicate)" if earlier else "")
    return stored


def process_pending(database: Database, settings: Settings, campaign: Campaign,
                    renderer: ReplyRenderer) -> tuple[list[Processed], list[str]]:
    """Process every archived message not yet processed, each in its own transaction.

    A message whose processing failed is tried again on later cycles, up to
    `max_process_attempts` in all, because many failures (a busy database, a
    full disk) pass. Returns the results and the Message-IDs that failed now.
    """
    with database.session() as session:
        pending = list(session.execute(
            select(StoredMessage.id)
            .where(or_(StoredMessage.status == "new",
                       and_(StoredMessage.status == "failed",
                            StoredMessage.attempts < settings.max_process_attempts)))
            .order_by(StoredMessage.id)
        ).scalars())

    results = []
    failed = []
    for pk in pending:
        try:
            with database.session() as session:
                results.append(process_message(session, pk, settings, campaign, renderer, reply=True))
        except Exception as err:
            # The raw message stays archived; `intake reparse` can run it again.
            log.exception("processing failed for message pk=%s", pk)
            with database.session() as session:
                stored = session.get(StoredMessage, pk)
                assert stored is not None
                stored.status = "failed"
                stored.attempts += 1
                stored.error = f"{type(err).__name__}: {err}"
                failed.append(stored.message_id)
    return results, failed


def process_message(session: Session, pk: int, settings: Settings, campaign: Campaign,
                    renderer: ReplyRenderer, *, reply: bool) -> Processed:
    """Parse and check stored message `pk`, record a new submission version, queue a reply.

    Earlier versions of the same message stop being current. With reply=False
    (a staff re-run) the decision is recorded but no email is queued.
    """
    stored = session.get(StoredMessage, pk)
    if stored is None or stored.raw is None:
        raise LookupError(f"message pk={pk} has no raw bytes")

    parsed = parse_message(stored.raw)
    if stored.size > settings.max_message_bytes:
        evaluation = Evaluation(decision="rejected", late=False, findings=[Finding(
            code="message-too-large", params={"size": size_text(stored.size),
                                              "limit": size_text(settings.max_message_bytes)})])
    else:
        evaluation = evaluate(parsed, campaign, received=stored.received_at,
                              own_addresses=settings.own_addresses, limits=settings.limits)

    if _thanks_for_our_reply(session, parsed, evaluation):
        # "收到，谢谢" to an acknowledgement: answering it would start a loop of courtesies.
        evaluation = Evaluation(decision=IGNORED, late=False, ignore_reason="reply to our own message, no attachment")

    submission = _record_submission(session, stored, parsed, evaluation, campaign)
    decision = Decision(submission=submission, decision=evaluation.decision, late=evaluation.late,
                        ignore_reason=evaluation.ignore_reason)
    session.add(decision)
    session.flush()

    reply_to = ""
    if reply and evaluation.decision != IGNORED:
        reply_to = parsed.reply_to_address or parsed.from_address
        email = renderer.render_reply(parsed, evaluation, campaign, received=stored.received_at, recipient=reply_to)
        session.add(OutboxItem(purpose="reply", decision_id=decision.id, recipient=reply_to,
                               subject=email.subject, message_id=email.message_id, raw=email.raw))

    stored.status = "processed"
    stored.error = None
    counts = {form.id: (evaluation.reports(form.id) if form.kind == "report" else evaluation.rows(form.id))
              for form in campaign.forms}
    log.info("processed message pk=%s message_id=%s decision=%s late=%s files=%d", pk, stored.message_id,
             evaluation.decision, evaluation.late, len(evaluation.files))
    return Processed(message_pk=pk, message_id=stored.message_id, decision=evaluation.decision,
                     late=evaluation.late, reply_to=reply_to, counts=counts)


def _record_submission(session: Session, stored: StoredMessage, parsed: ParsedMessage,
                       evaluation: Evaluation, campaign: Campaign) -> Submission:
    session.execute(update(Submission).where(Submission.message_pk == stored.id).values(current=False))
    version = len(stored.submissions) + 1

    submission = Submission(
        message=stored, version=version, current=True, sender=parsed.from_address, sender_name=parsed.from_name,
        reply_to=parsed.reply_to_address or parsed.from_address, subject=parsed.subject,
        submitter=_match_submitter(parsed, evaluation, campaign),
        forwarded_from=parsed.inner_senders[0] if parsed.inner_senders else "",
        received_at=stored.received_at,
    )
    session.add(submission)

    for outcome in evaluation.files:
        record = FileRecord(
            submission=submission, name=outcome.name, kind=outcome.kind.value,
            form_id=outcome.form.id if outcome.form else None, status=outcome.status, late=outcome.late,
            sheet=outcome.table.sheet if outcome.table else "",
            unit=outcome.report.unit if outcome.report else "", row_count=outcome.row_count,
        )
        session.add(record)
        if outcome.table is not None:
            for row in outcome.table.rows:
                session.add(RowRecord(file=record, form_id=outcome.table.form.id, excel_row=row.number,
                                      values=row.values, original=row.original))
        if outcome.report is not None:
            for position, (heading, text) in enumerate(outcome.report.sections.items()):
                session.add(ReportSection(file=record, position=position, heading=heading, text=text))
        for finding in outcome.findings:
            session.add(_problem(submission, finding))

    for finding in evaluation.findings:
        session.add(_problem(submission, finding))
    return submission


def _thanks_for_our_reply(session: Session, parsed: ParsedMessage, evaluation: Evaluation) -> bool:
    """True for a message without attachments or links that answers one of our own emails."""
    if evaluation.decision != "rejected" or parsed.attachments:
        return False
    if any(f.code != "no-attachment" for f in evaluation.findings):
        return False
    referenced = set((parsed.header("in-reply-to") + " " + parsed.header("references")).split())
    if not referenced:
        return False
    query = select(OutboxItem.id).where(OutboxItem.message_id.in_(referenced)).limit(1)
    return session.execute(query).first() is not None


def _problem(submission: Submission, finding: Finding) -> Problem:
    return Problem(submission=submission, code=finding.code, severity=finding.severity, file=finding.file,
                   sheet=finding.sheet, row=finding.row, column=finding.column, value=finding.value,
                   message=finding.message())


def _match_submitter(parsed: ParsedMessage, evaluation: Evaluation, campaign: Campaign) -> str:
    """Name the expected submitter (a city department) this message comes from, if any.

    Only messages that carry one of the city forms are matched, so a provider
    whose company name holds a city's name is not taken for that city.
    """
    if not any(f.form is not None and f.form.from_submitters for f in evaluation.files):
        return ""
    texts = [parsed.from_name, parsed.subject] + [f.name for f in evaluation.files]
    for submitter in campaign.submitters:
        if parsed.from_address in submitter.addresses:
            return submitter.name
    for submitter in campaign.submitters:
        if any(submitter.match in text for text in texts):
            return submitter.name
    return ""


def _header_message_id(raw: bytes) -> str:
    parsed = parse_message_id_only(raw)
    return parsed or f"<sha256.{hashlib.sha256(raw).hexdigest()[:32]}@intake.invalid>"


def parse_message_id_only(raw: bytes) -> str:
    """Return the Message-ID header of `raw` without parsing the body."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    value = headers.get("Message-ID")
    return str(value).strip() if value else ""


def _fallback_received(raw: bytes) -> datetime:
    """Return the Date header, else now: for a Maildir message without a Received header."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    try:
        date = email.utils.parsedate_to_datetime(str(headers.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return datetime.now(timezone.utc)
    return date if date.tzinfo is not None else datetime.now(timezone.utc)
