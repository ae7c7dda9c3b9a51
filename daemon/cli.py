"""The `intake` command line. Help and messages are in Chinese, for staff."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from sqlalchemy import select

from daemon.config import ENV_CONFIG, Settings, config_path, load_settings
from daemon.errors import IntakeError, StoreError
from daemon.service import CycleReport, Service
from daemon.translation import install_click_translation
from rules.campaign import CampaignError

install_click_translation()

DECISION_LABELS = {"accepted": "受理", "partial": "部分退回", "rejected": "退回", "ignored": "不回复"}

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _service(ctx: click.Context) -> Service:
    settings: Settings = load_settings(config_path(ctx.obj["config"]))
    try:
        return Service(settings)
    except CampaignError as err:
        raise IntakeError(str(err)) from err


@click.group(context_settings=CONTEXT)
@click.option("--config", "config", metavar="FILE",
              help=f"配置文件路径；默认读取环境变量 {ENV_CONFIG}，再默认当前目录的 config.toml。")
@click.option("-v", "--verbose", count=True, help="输出更详细的日志（-v 为 INFO，-vv 为 DEBUG）。")
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: int) -> None:
    """intake：自动处理报送邮箱——收取邮件、校验表格、自动回复、生成汇总。"""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # mail-parser logs every header it reads at DEBUG, which drowns intake's own lines.
    logging.getLogger("mailparser").setLevel(max(level, logging.INFO))
    ctx.ensure_object(dict)
    # Settings are read by each command, so that --help works without a configuration.
    ctx.obj["config"] = config


@cli.command()
@click.option("--once", is_flag=True, help="只收取、处理、发送一轮，然后退出。")
@click.pass_context
def run(ctx: click.Context, once: bool) -> None:
    """按计划轮询邮箱、处理邮件、发送回复，并每天发送汇总。"""
    service = _service(ctx)
    try:
        if once:
            report = service.cycle()
            _print_cycle(report, service)
            if report.failed:
                raise IntakeError(f"{len(report.failed)} 封邮件处理失败（原始邮件已保存）："
                                  f"{'、'.join(report.failed)}。查明原因后可用 intake reparse 重新处理。")
            return
        from daemon.service import run_forever

        click.echo(f"intake 已启动：每 {service.settings.poll_seconds} 秒检查一次邮箱，按 Ctrl-C 停止。")
        run_forever(service)
        click.echo("intake 已停止。")
    finally:
        service.close()


@cli.command()
@click.argument("message_id")
@click.option("--reply", is_flag=True, help="重新处理后按新结果再次回复发件人（默认不回复）。")
@click.pass_context
def reparse(ctx: click.Context, message_id: str, reply: bool) -> None:
    """按 Message-ID 重新解析并校验一封已保存的邮件。"""
    from daemon.outbox import send_queued
    from daemon.pipeline import process_message
    from daemon.store import StoredMessage

    service = _service(ctx)
    try:
        requested = message_id.strip()
        candidates = {requested, f"<{requested.strip('<>')}>"}
        with service.database.session() as session:
            stored = session.execute(
                select(StoredMessage).where(StoredMessage.message_id.in_(candidates),
                                            StoredMessage.raw.is_not(None)).order_by(StoredMessage.id)
            ).scalars().first()
            if stored is None:
                raise StoreError(f"存储中没有 Message-ID 为 {requested} 的邮件：请检查拼写（可带或不带尖括号）。")
            result = process_message(session, stored.id, service.settings, service.campaign, service.renderer,
                                     reply=reply)
        click.echo(f"已重新处理 {result.message_id}：{DECISION_LABELS.get(result.decision, result.decision)}"
                   f"{'（逾期）' if result.late else ''}，{_counts(result.counts, service)}。")
        if reply:
            sent, failed = send_queued(service.database, service.settings)
            verb = "写入" if service.settings.outbox_transport == "file" else "发送"
            click.echo(f"已{verb} {sent} 封回复，{verb}失败 {failed} 封。")
    finally:
        service.close()


@cli.command()
@click.option("--send", is_flag=True, help="把汇总发送到配置项 [digest] to 的邮箱，而不只是显示。")
@click.pass_context
def digest(ctx: click.Context, send: bool) -> None:
    """显示报送情况汇总：谁已报送、谁逾期、谁未报送、哪些被退回。"""
    from daemon.digest import queue_digest, render_digest
    from daemon.outbox import send_queued

    service = _service(ctx)
    try:
        click.echo(render_digest(service))
        if send:
            queue_digest(service)
            sent, failed = send_queued(service.database, service.settings)
            click.echo(f"汇总已发送至 {', '.join(service.settings.digest_to)}（发送 {sent} 封，失败 {failed} 封）。")
    finally:
        service.close()


@cli.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="汇总表的保存路径（.xlsx）。")
@click.pass_context
def export(ctx: click.Context, out: Path) -> None:
    """导出汇总表：每种表单一个工作表，含发件人、接收时间和 Message-ID。"""
    from daemon.export import export_workbook

    if out.suffix.lower() != ".xlsx":
        raise click.BadParameter(f"{out} 的扩展名不是 .xlsx：请改为 .xlsx 文件名。", param_hint="--out")
    service = _service(ctx)
    try:
        written = export_workbook(service, out)
    finally:
        service.close()
    summary = "，".join(f"{service.campaign.form(k).attachment} {v} 条" for k, v in written.items())
    click.echo(f"已导出 {out}：{summary}。")


def _print_cycle(report: CycleReport, service: Service) -> None:
    verb = "写入" if service.settings.outbox_transport == "file" else "发送"
    click.echo(f"本轮收取新邮件 {report.archived} 封，处理 {len(report.processed)} 封，"
               f"{verb}回复 {report.sent} 封{f'，{verb}失败 {report.send_failures} 封' if report.send_failures else ''}。")
    for item in report.processed:
        label = DECISION_LABELS.get(item.decision, item.decision)
        target = f" → 回复 {item.reply_to}" if item.reply_to else ""
        click.echo(f"  {item.message_id}：{label}{'（逾期）' if item.late else ''}，{_counts(item.counts, service)}{target}")
    if service.settings.outbox_transport == "file" and report.sent:
        click.echo(f"回复邮件已写入 {service.settings.outbox_dir}")


def _counts(counts: dict[str, int], service: Service) -> str:
    parts = []
    for form in service.campaign.forms:
        value = counts.get(form.id, 0)
        if value:
            unit = "份报告" if form.kind == "report" else "行"
            parts.append(f"{form.attachment} {value} {unit}")
    return "、".join(parts) or "无有效数据"


def main() -> None:
    """Entry point of the console script: IntakeError becomes a message and exit 1."""
    try:
        cli.main(standalone_mode=False, prog_name="intake")
    except click.exceptions.Abort:
        click.echo("已取消。", err=True)
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except IntakeError as err:
        click.echo(f"错误：{err}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
