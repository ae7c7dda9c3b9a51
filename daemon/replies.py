"""Render the emails intake sends, from the Jinja2 templates in outbox_templates/.

Every reply threads under the submitter's message (In-Reply-To, References) and
carries the headers RFC 3834 asks of automatic responses, so that other robots
do not answer it: Auto-Submitted: auto-replied. X-Intake-Decision and
X-Intake-Late let staff filter replies in their own client.
"""

from __future__ import annotations

import email.policy
import email.utils
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jinja2

from daemon.config import SmtpSettings
from daemon.errors import ConfigError
from parsers.mime import ParsedMessage
from rules.campaign import Campaign
from rules.evaluate import ACCEPTED, PARTIAL, PASSED, RETURNED, Evaluation

SUBJECT_PREFIX = {
    ACCEPTED: "【已受理】",
    PARTIAL: "【部分退回】",
    "rejected": "【退回】",
}

DECISION_NAMES = {
    ACCEPTED: "已受理",
    PARTIAL: "部分受理，部分退回",
    "rejected": "退回",
    "ignored": "不回复",
}


@dataclass(frozen=True)
class RenderedEmail:
    """A complete email ready for the outbox."""

    subject: str
    message_id: str
    raw: bytes


class ReplyRenderer:
    """Renders replies and the digest with one Jinja2 environment."""

    def __init__(self, templates_dir: Path, smtp: SmtpSettings) -> None:
        self.smtp = smtp
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates_dir)),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def render_reply(self, message: ParsedMessage, evaluation: Evaluation, campaign: Campaign, *,
                     received: datetime, recipient: str) -> RenderedEmail:
        """Render the reply to `message` for its decision."""
        context = reply_context(message, evaluation, campaign, received=received)
        original = " ".join((message.subject or campaign.title).split())
        subject = f"{SUBJECT_PREFIX.get(evaluation.decision, '')}{original}"
        headers = {"Auto-Submitted": "auto-replied", "X-Intake-Decision": evaluation.decision}
        if evaluation.late:
            headers["X-Intake-Late"] = "yes"
        if message.message_id:
            headers["In-Reply-To"] = message.message_id
            references = message.header("references").split()
            headers["References"] = " ".join([*references, message.message_id])
        return self._build("reply", context, subject=subject, recipient=recipient, headers=headers)

    def render_digest(self, context: dict[str, Any], *, recipients: tuple[str, ...]) -> RenderedEmail:
        subject = f"【每日汇总】{context['campaign_title']}（{context['today']}）"
        return self._build("digest", context, subject=subject, recipient=", ".join(recipients),
                           headers={"Auto-Submitted": "auto-generated"})

    def check_templates(self) -> None:
        """Raise ConfigError unless every template intake sends from can be loaded."""
        for name in ("reply.txt.j2", "reply.html.j2", "digest.txt.j2", "digest.html.j2"):
            try:
                self.environment.get_template(name)
            except jinja2.TemplateError as err:
                raise ConfigError(f"无法读取邮件模板 {name}（{err}）：请检查配置项 [outbox] templates，"
                                  f"或删除该项以使用 intake 自带的模板。") from err

    def render_text(self, name: str, context: dict[str, Any]) -> str:
        return self.environment.get_template(f"{name}.txt.j2").render(**context)

    def _build(self, name: str, context: dict[str, Any], *, subject: str, recipient: str,
               headers: dict[str, str]) -> RenderedEmail:
        text = self.render_text(name, context)
        html = self.environment.get_template(f"{name}.html.j2").render(**context)

        domain = (self.smtp.from_address.rsplit("@", 1)[-1] or "intake.invalid")
        message_id = email.utils.make_msgid(idstring="intake", domain=domain)
        email_message = EmailMessage(policy=email.policy.SMTP)
        email_message["From"] = email.utils.formataddr((self.smtp.from_name, self.smtp.from_address))
        email_message["To"] = recipient
        email_message["Subject"] = subject
        email_message["Date"] = email.utils.formatdate(localtime=True)
        email_message["Message-ID"] = message_id
        for key, value in headers.items():
            email_message[key] = value
        email_message.set_content(text, charset="utf-8")
        email_message.add_alternative(html, subtype="html", charset="utf-8")
        return RenderedEmail(subject=subject, message_id=message_id, raw=email_message.as_bytes())


def reply_context(message: ParsedMessage, evaluation: Evaluation, campaign: Campaign, *,
                  received: datetime) -> dict[str, Any]:
    """Build the values the reply templates read."""
    local = received.astimezone(campaign.timezone)
    files = []
    for outcome in evaluation.files:
        if outcome.status not in (PASSED, RETURNED):
            continue
        files.append({
            "name": outcome.name,
            "passed": outcome.status == PASSED,
            "form": outcome.form.display_name if outcome.form else "",
            "rows": outcome.row_count,
            "is_report": outcome.report is not None,
            "unit": outcome.report.unit if outcome.report else "",
            "problems": [f.message() for f in outcome.findings if f.severity == "error"],
        })
    skipped = [f.name for f in evaluation.files if f.status not in (PASSED, RETURNED)]
    return {
        "sender_name": message.from_name or message.from_address,
        "subject": message.subject,
        "received": f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}",
        "decision": evaluation.decision,
        "decision_name": DECISION_NAMES.get(evaluation.decision, evaluation.decision),
        "late": evaluation.late,
        "files": files,
        "passed_files": [f for f in files if f["passed"]],
        "returned_files": [f for f in files if not f["passed"]],
        "skipped": skipped,
        "notes": [f.message() for f in evaluation.findings],
        "campaign_title": campaign.title,
        "document_number": campaign.document_number,
    }
