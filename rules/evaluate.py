"""Evaluate one parsed message against a campaign: every file's outcome and the decision.

Decisions, as the submitter reads them on the reply:
- accepted: every form attached passes;
- partial: some forms pass, some are returned;
- rejected: nothing usable (no attachment, no form, every form fails);
- ignored: no reply at all (auto-replies, bounces, our own mail, lists).
Late is a flag beside the decision, never a reason to reject.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath

from parsers.archive import ArchiveLimits, expand_7z, expand_zip
from parsers.convert import convert_office
from parsers.document import read_docx
from parsers.links import find_download_links
from parsers.mime import Attachment, ParsedMessage
from parsers.problems import FileProblem
from parsers.rar import expand_rar
from parsers.sniff import FileKind, sniff
from parsers.spreadsheet import DEFAULT_MAX_ROWS, read_workbook
from parsers.tnef import expand_tnef
from rules.campaign import Campaign, Form
from rules.findings import INFO, Finding, from_problem
from rules.ignore import ignore_reason
from rules.reports import ReportResult, read_report
from rules.tables import TableResult, read_table

log = logging.getLogger(__name__)

ACCEPTED = "accepted"
PARTIAL = "partial"
REJECTED = "rejected"
IGNORED = "ignored"

#: File outcomes.
PASSED = "passed"
RETURNED = "returned"
SKIPPED = "skipped"

_UNSUPPORTED_NAMES = {
    FileKind.OLE: "旧版 Office",
}


#: Containers whose members are evaluated like attachments.
_EXPANDERS = {FileKind.ZIP: expand_zip, FileKind.SEVEN_ZIP: expand_7z, FileKind.RAR: expand_rar,
              FileKind.TNEF: expand_tnef}


@dataclass(frozen=True)
class Limits:
    """Bounds on what one message may bring in."""

    max_attachments: int = 30
    max_archive_depth: int = 3
    max_rows: int = DEFAULT_MAX_ROWS
    archive: ArchiveLimits = ArchiveLimits()


@dataclass
class FileOutcome:
    """The outcome for one file: its form, its status and the findings about it."""

    name: str
    kind: FileKind
    status: str
    form: Form | None = None
    table: TableResult | None = None
    report: ReportResult | None = None
    findings: list[Finding] = field(default_factory=list)
    late: bool = False

    @property
    def row_count(self) -> int:
        return len(self.table.rows) if self.table and self.status == PASSED else 0


@dataclass
class Evaluation:
    """The verdict on one message."""

    decision: str
    late: bool
    ignore_reason: str | None = None
    files: list[FileOutcome] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def passed(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == PASSED]

    def returned(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == RETURNED]

    def rows(self, form_id: str) -> int:
        return sum(f.row_count for f in self.passed() if f.form and f.form.id == form_id)

    def reports(self, form_id: str) -> int:
        return sum(1 for f in self.passed() if f.form and f.form.id == form_id and f.report)


def evaluate(message: ParsedMessage, campaign: Campaign, *, received: datetime,
             own_addresses: frozenset[str], limits: Limits = Limits()) -> Evaluation:
    """Evaluate `message`, received at `received`, against `campaign`."""
    reason = ignore_reason(message, own_addresses=own_addresses)
    if reason is not None:
        return Evaluation(decision=IGNORED, late=False, ignore_reason=reason)

    evaluation = Evaluation(decision=REJECTED, late=False)
    attachments = message.attachments
    if len(attachments) > limits.max_attachments:
        evaluation.findings.append(Finding(code="too-many-attachments",
                                           params={"count": len(attachments), "limit": limits.max_attachments}))
        attachments = attachments[:limits.max_attachments]

    for attachment in attachments:
        evaluation.files.extend(_attachment_outcomes(attachment, campaign, limits))

    for outcome in evaluation.files:
        if outcome.form is not None and outcome.status != SKIPPED:
            outcome.late = campaign.is_late(outcome.form, received)

    _decide(evaluation, message, campaign, received)
    return evaluation


def _attachment_outcomes(attachment: Attachment, campaign: Campaign, limits: Limits) -> list[FileOutcome]:
    name = attachment.filename or "（未命名附件）"
    if attachment.inline and attachment.content_type.startswith("image/"):
        return [FileOutcome(name=name, kind=FileKind.IMAGE, status=SKIPPED)]
    try:
        return _file_outcomes(name, attachment.data, campaign, limits, depth=0)
    except Exception as err:
        # A reader bug must not cost the sender a reply: the file is returned as
        # unreadable, and the log keeps the traceback for the developers.
        log.exception("unexpected error reading attachment %r", name)
        return [_returned(name, FileKind.UNKNOWN, Finding(code="unreadable-file", file=name,
                                                          params={"reason": f"{type(err).__name__}: {err}"}))]


def _file_outcomes(name: str, data: bytes, campaign: Campaign, limits: Limits, *, depth: int) -> list[FileOutcome]:
    kind = sniff(data)

    if kind in (FileKind.XLSX, FileKind.XLS):
        return [_table_outcome(name, kind, data, campaign, limits)]
    if kind == FileKind.DOCX:
        return [_report_outcome(name, data, campaign)]
    if kind == FileKind.DOC:
        return [_converted_report_outcome(name, data, campaign)]
    if kind in _EXPANDERS:
        return _archive_outcomes(name, kind, data, campaign, limits, depth=depth)
    if kind == FileKind.ENCRYPTED_OFFICE:
        return [_returned(name, kind, Finding(code="encrypted-file", file=name))]
    if kind in _UNSUPPORTED_NAMES:
        return [_returned(name, kind, Finding(code="unsupported-format", file=name,
                                              params={"format": _UNSUPPORTED_NAMES[kind]}))]
    # Images, PDF scans, text notes and unknown bytes are not forms; the reply lists
    # them as not processed, and a message with nothing else is rejected as no-form.
    return [FileOutcome(name=name, kind=kind, status=SKIPPED)]


def _table_outcome(name: str, kind: FileKind, data: bytes, campaign: Campaign, limits: Limits) -> FileOutcome:
    try:
        sheets = read_workbook(data, kind, max_rows=limits.max_rows)
    except FileProblem as problem:
        return _returned(name, kind, from_problem(problem.code, problem.detail, file=name))

    table = read_table(sheets, campaign, file=name)
    if table is None:
        return _returned(name, kind, Finding(code="not-a-form", file=name))
    status = PASSED if table.passed else RETURNED
    return FileOutcome(name=name, kind=kind, status=status, form=table.form, table=table, findings=list(table.findings))


def _report_outcome(name: str, data: bytes, campaign: Campaign) -> FileOutcome:
    try:
        paragraphs = read_docx(data)
    except FileProblem as problem:
        return _returned(name, FileKind.DOCX, from_problem(problem.code, problem.detail, file=name))

    report = read_report(paragraphs, campaign, file=name)
    if report is None:
        return _returned(name, FileKind.DOCX, Finding(code="not-a-report", file=name))
    status = PASSED if report.passed else RETURNED
    return FileOutcome(name=name, kind=FileKind.DOCX, status=status, form=report.form, report=report,
                       findings=list(report.findings))


def _converted_report_outcome(name: str, data: bytes, campaign: Campaign) -> FileOutcome:
    """Convert a Word 97-2003 report (.doc, or .wps from WPS Writer) to .docx and check it.

    Without LibreOffice, or when the conversion fails, the file is returned with a
    request to save it as .docx.
    """
    suffix = PurePosixPath(name).suffix.lstrip(".").lower()
    if not re.fullmatch(r"[a-z0-9]{1,8}", suffix):
        suffix = "doc"
    try:
        converted = convert_office(data, source_suffix=suffix, target="docx")
    except FileProblem as problem:
        return _returned(name, FileKind.DOC, from_problem(problem.code, problem.detail, file=name))

    outcome = _report_outcome(name, converted, campaign)
    outcome.kind = FileKind.DOC
    return outcome


def _archive_outcomes(name: str, kind: FileKind, data: bytes, campaign: Campaign, limits: Limits, *,
                      depth: int) -> list[FileOutcome]:
    if depth >= limits.max_archive_depth:
        return [_returned(name, kind, Finding(code="archive-too-deep", file=name,
                                              params={"limit": limits.max_archive_depth}))]
    try:
        expansion = _EXPANDERS[kind](data, limits.archive)
    except FileProblem as problem:
        # The Outlook user never saw winmail.dat, so the request is about Outlook's format.
        code = "unreadable-tnef" if kind == FileKind.TNEF and problem.code == "unreadable-archive" else problem.code
        return [_returned(name, kind, from_problem(code, problem.detail, file=name))]

    outcomes: list[FileOutcome] = []
    for member_name, problem in expansion.problems:
        path = f"{name}/{member_name}"
        outcomes.append(_returned(path, FileKind.UNKNOWN, from_problem(problem.code, problem.detail, file=path)))
    for member in expansion.members:
        outcomes.extend(_file_outcomes(f"{name}/{member.name}", member.data, campaign, limits, depth=depth + 1))

    if not any(o.status != SKIPPED for o in outcomes):
        outcomes.append(_returned(name, kind, Finding(code="empty-archive", file=name)))
    return outcomes


def _returned(name: str, kind: FileKind, finding: Finding) -> FileOutcome:
    return FileOutcome(name=name, kind=kind, status=RETURNED, findings=[finding])


def _decide(evaluation: Evaluation, message: ParsedMessage, campaign: Campaign, received: datetime) -> None:
    passed, returned = evaluation.passed(), evaluation.returned()
    link = find_download_links(message.text, message.html)
    if link is not None:
        names = "、".join(f"“{name}”" for name in link.names) or "文件"
        evaluation.findings.append(Finding(code="download-link", params={"names": names, "url": link.url}))

    # Attachments past the limit were not read, so the message cannot be fully accepted.
    truncated = any(f.code == "too-many-attachments" for f in evaluation.findings)
    if passed and (returned or truncated):
        evaluation.decision = PARTIAL
    elif passed:
        evaluation.decision = ACCEPTED
    else:
        evaluation.decision = REJECTED
        if not returned and link is None:
            visible = [a for a in message.attachments if not a.inline]
            evaluation.findings.append(Finding(code="no-form" if visible else "no-attachment"))

    late_forms = {f.form.id: f.form for f in evaluation.files if f.late and f.form is not None}
    evaluation.late = bool(late_forms)
    local = received.astimezone(campaign.timezone)
    for form in late_forms.values():
        evaluation.findings.append(Finding(code="late", severity=INFO, params={
            "form": form.display_name,
            "deadline": f"{form.deadline.year}年{form.deadline.month}月{form.deadline.day}日 24:00",
            "received": f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}",
        }))
