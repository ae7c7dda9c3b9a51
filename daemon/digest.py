"""The daily digest for staff: who sent, who is late, who is missing, what was returned."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from daemon.replies import DECISION_NAMES
from daemon.reporting import current_submissions, latest_passed, submitter_key
from daemon.store import OutboxItem, StoredMessage

if TYPE_CHECKING:
    from daemon.service import Service


def digest_context(service: Service, *, now: datetime | None = None) -> dict[str, Any]:
    """Collect the digest's figures from the store."""
    campaign = service.campaign
    zone = campaign.timezone
    now = (now or datetime.now(timezone.utc)).astimezone(zone)

    with service.database.session() as session:
        submissions = current_submissions(session)
        failed = list(session.execute(select(StoredMessage).where(StoredMessage.status == "failed")).scalars())
        unsent = list(session.execute(select(OutboxItem).where(OutboxItem.status == "failed")).scalars())

        counts = {name: 0 for name in DECISION_NAMES}
        for submission in submissions:
            if submission.decision is not None:
                counts[submission.decision.decision] = counts.get(submission.decision.decision, 0) + 1

        forms = []
        for form in campaign.forms:
            entries = latest_passed(submissions, form.id)
            senders = [{
                "who": _who(entry.submission),
                "file": entry.file.name,
                "amount": f"{entry.file.unit}" if form.kind == "report" else f"{entry.file.row_count} 行",
                "received": _local(entry.submission.received_at, zone),
                "late": entry.file.late,
            } for entry in entries]
            missing = []
            if form.from_submitters:
                present = {entry.submission.submitter for entry in entries}
                missing = [s.name for s in campaign.submitters if s.name not in present]
            forms.append({"name": form.display_name, "is_report": form.kind == "report", "deadline": f"{form.deadline.year}年{form.deadline.month}月{form.deadline.day}日",
                          "overdue": now >= campaign.deadline_end(form), "senders": senders,
                          "late": [s for s in senders if s["late"]], "missing": missing})

        returned = []
        for submission in submissions:
            for record in submission.files:
                if record.status != "returned" or _corrected_later(submission, record.form_id, submissions):
                    continue
                problems = [p.message for p in submission.problems if p.file == record.name and p.severity == "error"]
                returned.append({"who": _who(submission), "file": record.name,
                                 "received": _local(submission.received_at, zone),
                                 "problems": problems[:5], "more": max(0, len(problems) - 5)})
            if submission.decision and submission.decision.decision == "rejected" and not any(
                    f.status == "returned" for f in submission.files) and not _corrected_later(submission, None, submissions):
                notes = [p.message for p in submission.problems if not p.file]
                returned.append({"who": _who(submission), "file": "（无可处理附件）",
                                 "received": _local(submission.received_at, zone), "problems": notes[:2], "more": 0})

        return {
            "campaign_title": campaign.title,
            "document_number": campaign.document_number,
            "today": f"{now:%Y年%m月%d日}",
            "now": f"{now:%Y年%m月%d日 %H:%M}",
            "total": len(submissions),
            "counts": counts,
            "decision_names": DECISION_NAMES,
            "forms": forms,
            "returned": returned,
            "failed": [{"message_id": m.message_id, "error": m.error or ""} for m in failed],
            "unsent": [{"recipient": o.recipient, "subject": o.subject, "error": o.last_error or ""} for o in unsent],
        }


def render_digest(service: Service, *, now: datetime | None = None) -> str:
    return service.renderer.render_text("digest", digest_context(service, now=now))


def queue_digest(service: Service, *, now: datetime | None = None) -> OutboxItem:
    """Queue the digest for the [digest] to addresses; the next send step mails it."""
    recipients = service.settings.digest_to
    if not recipients:
        from daemon.errors import ConfigError

        raise ConfigError("[digest] to 未设置：请填写接收每日汇总的邮箱地址。")
    rendered = service.renderer.render_digest(digest_context(service, now=now), recipients=recipients)
    item = OutboxItem(purpose="digest", recipient=", ".join(recipients), subject=rendered.subject,
                      message_id=rendered.message_id, raw=rendered.raw)
    with service.database.session() as session:
        session.add(item)
    return item


def _corrected_later(submission: Any, form_id: str | None, submissions: list[Any]) -> bool:
    """True when the same submitter later sent a passing file (of `form_id`, if given)."""
    key = submitter_key(submission)
    for later in submissions:
        if later.received_at <= submission.received_at or submitter_key(later) != key:
            continue
        if any(f.status == "passed" and (form_id is None or f.form_id == form_id) for f in later.files):
            return True
    return False


def _who(submission: Any) -> str:
    name = submission.submitter or submission.sender_name or submission.sender
    key = submitter_key(submission)
    if submission.forwarded_from:
        return f"{name} <{submission.sender}>（转发自 {submission.forwarded_from}）"
    return f"{name} <{submission.sender}>" if key != submission.sender or submission.sender_name else key


def _local(moment: datetime, zone: Any) -> str:
    return f"{moment.astimezone(zone):%m月%d日 %H:%M}"
