"""One poll cycle, and the scheduler that repeats it.

A cycle archives new mail, processes what was archived and sends the outbox.
`intake run` repeats it every poll_seconds with APScheduler and sends the digest
daily at digest_at (Asia/Shanghai); SIGTERM and Ctrl-C stop it cleanly after the
job that is running.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from daemon.config import Settings
from daemon.mailbox import Source
from daemon.mailbox.imap import ImapSource
from daemon.mailbox.maildir import MaildirSource
from daemon.outbox import send_queued
from daemon.pipeline import Processed, archive_new, process_pending
from daemon.replies import ReplyRenderer
from daemon.store import Database
from rules.campaign import Campaign, load_campaign

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    """The counts and failures of one cycle."""

    archived: int = 0
    processed: list[Processed] = field(default_factory=list)
    sent: int = 0
    send_failures: int = 0
    #: Message-IDs whose processing failed in this cycle.
    failed: list[str] = field(default_factory=list)


class Service:
    """The store, the campaign, the renderer and the mailbox of one configuration."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.campaign: Campaign = load_campaign(settings.campaign_rules)
        self.database = Database(settings.store_url)
        self.database.create_schema()
        self.renderer = ReplyRenderer(settings.templates_dir, settings.smtp)
        self.renderer.check_templates()

    def source(self) -> Source:
        mailbox = self.settings.mailbox
        if mailbox.kind == "maildir":
            assert mailbox.path is not None
            return MaildirSource(mailbox.path, mailbox.name)
        return ImapSource(mailbox)

    def cycle(self) -> CycleReport:
        """Archive, process and send once."""
        report = CycleReport()
        report.archived = archive_new(self.database, self.source())
        report.processed, report.failed = process_pending(self.database, self.settings, self.campaign, self.renderer)
        report.sent, report.send_failures = send_queued(self.database, self.settings)
        log.info("cycle done archived=%d processed=%d sent=%d send_failures=%d", report.archived,
                 len(report.processed), report.sent, report.send_failures)
        return report

    def close(self) -> None:
        self.database.dispose()


def run_forever(service: Service) -> None:
    """Poll on a schedule and send the daily digest until SIGTERM or Ctrl-C."""
    from daemon.digest import queue_digest

    settings = service.settings
    scheduler = BlockingScheduler(timezone=str(service.campaign.timezone))

    def poll() -> None:
        try:
            service.cycle()
        except Exception:
            # A failed cycle (mailbox down, database busy) is retried at the next interval.
            log.exception("poll cycle failed")

    def digest() -> None:
        try:
            queue_digest(service)
            service.cycle()
        except Exception:
            log.exception("daily digest failed")

    # max_instances=1 with coalesce: a slow cycle is never run twice at once.
    scheduler.add_job(poll, "interval", seconds=settings.poll_seconds, id="poll", max_instances=1,
                      coalesce=True, next_run_time=_now(scheduler))
    if settings.digest_to:
        scheduler.add_job(digest, CronTrigger(hour=settings.digest_at.hour, minute=settings.digest_at.minute,
                                              timezone=service.campaign.timezone), id="digest", max_instances=1)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s received; stopping after the running job", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("scheduler started poll_seconds=%s digest_at=%s", settings.poll_seconds, settings.digest_at)
    scheduler.start()
    log.info("scheduler stopped")


def _now(scheduler: BlockingScheduler):  # type: ignore[no-untyped-def]
    from datetime import datetime

    return datetime.now(scheduler.timezone)
