"""Benchmark: throughput of a processing cycle and memory for a zip bomb.

Run with `python -m tests.benchmark [--messages N]`. It prints one line per
measurement and exits 1 when a target is missed. Targets are set for a 2-core
machine; they are checked here instead of in timed unit tests.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import tracemalloc
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from daemon.config import load_settings
from daemon.service import Service
from parsers.mime import parse_message
from rules.campaign import load_campaign
from rules.evaluate import evaluate
from tests import builders
from tests.support import REPO, write_config

#: Messages per second that one cycle must reach (archive, parse, check, reply to file).
TARGET_MESSAGES_PER_SECOND = 10.0
#: Peak Python memory allowed while a 1 GB zip bomb is evaluated.
TARGET_BOMB_PEAK_BYTES = 120 * 1024 * 1024


def measure_cycle(count: int) -> float:
    """Deliver `count` Form 1 mails to a Maildir, run one cycle, return messages per second."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        new = root / "maildir" / "new"
        new.mkdir(parents=True)
        (root / "maildir" / "cur").mkdir()
        (root / "maildir" / "tmp").mkdir()
        workbook = builders.form1_workbook([builders.form1_row(n) for n in range(2, 7)])
        for index in range(count):
            raw = builders.mail(sender=f"服务商{index} <p{index}@example.com>", subject="汇总表",
                                message_id=f"<bench{index}@example.com>",
                                attachments=[("附件1.xlsx", workbook, builders.XLSX_TYPE)])
            (new / f"{1600000000 + index}.M{index}.bench").write_bytes(raw)

        config = write_config(root, mailbox='kind = "maildir"\npath = "maildir"\naddress = "gyhlw@gdei.gov.cn"',
                              store_url=f"sqlite:///{root / 'intake.db'}")
        service = Service(load_settings(config))
        started = time.perf_counter()
        report = service.cycle()
        elapsed = time.perf_counter() - started
        service.close()

    assert len(report.processed) == count and report.sent == count
    return count / elapsed


def measure_bomb() -> int:
    """Evaluate a mail whose zip holds 1 GB of zeros; return the peak traced memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("附件2-报告.docx", "w",
                                                                                       force_zip64=True) as member:
        chunk = bytes(1024 * 1024)
        for _ in range(1024):
            member.write(chunk)
    raw = builders.mail(sender="杨秀英 <yangxy@example.net>", subject="报告", message_id="<bomb@example.net>",
                        attachments=[("报告.zip", buffer.getvalue(), "application/zip")])
    campaign = load_campaign(REPO / "rules" / "notice_2020_858.toml")
    received = datetime(2020, 9, 19, tzinfo=timezone(timedelta(hours=8)))

    tracemalloc.start()
    evaluation = evaluate(parse_message(raw), campaign, received=received, own_addresses=frozenset())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert evaluation.decision == "rejected"
    return peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200, help="messages in the cycle benchmark")
    options = parser.parse_args()

    failures = 0
    rate = measure_cycle(options.messages)
    ok = rate >= TARGET_MESSAGES_PER_SECOND
    failures += not ok
    print(f"cycle: {rate:.1f} messages/s (target >= {TARGET_MESSAGES_PER_SECOND}) {'ok' if ok else 'MISSED'}")

    peak = measure_bomb()
    ok = peak <= TARGET_BOMB_PEAK_BYTES
    failures += not ok
    print(f"zip bomb: peak {peak / 1048576:.1f} MB (target <= {TARGET_BOMB_PEAK_BYTES / 1048576:.0f} MB) "
          f"{'ok' if ok else 'MISSED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
