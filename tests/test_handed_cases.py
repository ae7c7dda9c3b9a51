"""The handed cases folder, through the IMAP path, against its expected.toml.

The folder is not part of the repository: these tests run when it is present next
to the checkout (../shared/cases) or where INTAKE_CASES_DIR points, and skip
otherwise. The project's own fixtures cover the same kinds in the other tests.
"""

from __future__ import annotations

import email
import email.policy
import os
import secrets
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import select

from daemon.cli import cli
from daemon.config import load_settings
from daemon.service import Service
from daemon.store import RowRecord, StoredMessage, Submission
from parsers.mime import topmost_received
from tests.mailstack import Dovecot, ImapAccount, SmtpSink
from tests.support import PASSWORD_ENV, REPO, imap_config

CASES = Path(os.environ.get("INTAKE_CASES_DIR", REPO.parent / "shared" / "cases"))

pytestmark = pytest.mark.skipif(not (CASES / "expected.toml").is_file(),
                                reason=f"handed cases folder {CASES} not present")

FORM_OF_COUNT = {"form1_rows": "form1", "form3_rows": "form3", "form2_reports": "form2"}


@dataclass
class CaseRun:
    """One cycle over every handed case, with what came out of it."""

    expected: dict[str, dict[str, Any]]
    message_ids: dict[str, str]
    replies: dict[str, email.message.EmailMessage]
    recipients: dict[str, str]
    service: Service
    export: Path


def _expected() -> dict[str, dict[str, Any]]:
    if not (CASES / "expected.toml").is_file():
        return {}
    return tomllib.loads((CASES / "expected.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def case_run(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseRun]:
    expected = _expected()
    account = ImapAccount(host=dovecot.host, port=dovecot.port, username=f"cases-{secrets.token_hex(4)}",
                          password=secrets.token_urlsafe(12), server=dovecot)
    dovecot.add_user(account.username, account.password)

    message_ids: dict[str, str] = {}
    for name, case in expected.items():
        for file_name in case["files"]:
            raw = (CASES / file_name).read_bytes()
            # The receipt time is the topmost Received header's, as the server would have set it.
            account.append(raw, internaldate=topmost_received(raw))
            parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
            message_ids[name] = str(parsed["Message-ID"]).strip()

    sink = SmtpSink()
    sink.start()
    folder = tmp_path_factory.mktemp("cases")
    config = imap_config(folder, account, sink)
    os.environ[PASSWORD_ENV] = account.password
    try:
        result = CliRunner().invoke(cli, ["--config", str(config), "run", "--once"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        replying = [name for name, case in expected.items() if case["decision"] != "ignored"]
        received = sink.wait_for(len(replying), timeout=30)
        export = folder / "export.xlsx"
        assert CliRunner().invoke(cli, ["--config", str(config), "export", "--out", str(export)]).exit_code == 0
    finally:
        sink.stop()
        os.environ.pop(PASSWORD_ENV, None)

    replies: dict[str, email.message.EmailMessage] = {}
    recipients: dict[str, str] = {}
    by_reference = {}
    for item in received:
        reply = email.message_from_bytes(item.data, policy=email.policy.default)
        by_reference[str(reply["In-Reply-To"])] = (reply, ",".join(item.rcpt_tos))
    for name, message_id in message_ids.items():
        if message_id in by_reference:
            replies[name], recipients[name] = by_reference[message_id]

    service = Service(load_settings(config))
    yield CaseRun(expected=expected, message_ids=message_ids, replies=replies, recipients=recipients,
                  service=service, export=export)
    service.close()


def _submission(run: CaseRun, name: str) -> Submission:
    with run.service.database.session() as session:
        stored = session.execute(select(StoredMessage).where(StoredMessage.message_id == run.message_ids[name],
                                                             StoredMessage.raw.is_not(None))).scalar_one()
        submission = session.execute(select(Submission).where(Submission.message_pk == stored.id,
                                                              Submission.current.is_(True))).scalar_one()
        _ = submission.files, submission.decision
        for record in submission.files:
            _ = record.rows
        return submission


@pytest.mark.parametrize("name", sorted(_expected()))
def test_case_decision_and_reply(case_run: CaseRun, name: str) -> None:
    case = case_run.expected[name]
    submission = _submission(case_run, name)

    assert submission.decision is not None
    assert submission.decision.decision == case["decision"]
    if case["decision"] == "ignored":
        assert name not in case_run.replies
        return

    reply = case_run.replies[name]
    assert reply["X-Intake-Decision"] == case["decision"]
    assert (reply["X-Intake-Late"] == "yes") is case["late"]
    assert case_run.recipients[name] == case["reply_to"]
    text = reply.get_body(("plain",)).get_content()
    for phrase in case.get("must_mention", []):
        assert phrase in text, f"{name}: reply does not mention {phrase!r}"


@pytest.mark.parametrize("name", sorted(_expected()))
def test_case_counts_and_sample(case_run: CaseRun, name: str) -> None:
    case = case_run.expected[name]
    submission = _submission(case_run, name)
    passed = [f for f in submission.files if f.status == "passed"]

    for key, form_id in FORM_OF_COUNT.items():
        if key not in case:
            continue
        if form_id == "form2":
            counted = sum(1 for f in passed if f.form_id == form_id)
        else:
            counted = sum(f.row_count for f in passed if f.form_id == form_id)
        assert counted == case[key], f"{name}: {key}"

    sample = dict(case.get("sample", {}))
    if not sample:
        return
    row_number = sample.pop("row")
    rows = [r for f in passed for r in f.rows if r.excel_row == row_number]
    assert len(rows) == 1, f"{name}: no data row {row_number}"
    for column, value in sample.items():
        assert rows[0].values[column] == value, f"{name}: row {row_number} {column}"


def test_case_corrected_version_replaces_export_rows(case_run: CaseRun) -> None:
    corrected = [n for n, c in case_run.expected.items() if "export_form1_rows" in c]
    assert corrected
    sheet = load_workbook(case_run.export)["附件1"]
    header = [c.value for c in sheet[1]]
    ids = [row[header.index("Message-ID")] for row in sheet.iter_rows(min_row=2, values_only=True)]
    for name in corrected:
        case = case_run.expected[name]
        assert ids.count(case_run.message_ids[name]) == case["export_form1_rows"]
        assert case_run.message_ids[case["superseded"]] not in ids


def test_case_raw_messages_archived(case_run: CaseRun) -> None:
    with case_run.service.database.session() as session:
        stored = session.execute(select(StoredMessage)).scalars().all()
        rows = session.execute(select(RowRecord)).scalars().all()
    assert len(stored) == sum(len(c["files"]) for c in case_run.expected.values())
    assert all(m.raw is not None and m.uid for m in stored)
    assert rows
