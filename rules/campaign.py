"""Load a campaign file: its forms, their columns and checks, deadlines, submitters."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

COLUMN_TYPES = {"text", "year", "pattern", "amount", "choice"}
FORM_KINDS = {"table", "report"}


class CampaignError(ValueError):
    """Raised when a campaign file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Column:
    """One column of a table form, as its header names it and how it is checked."""

    label: str
    key: str
    type: str
    required: bool = True
    choices: tuple[Any, ...] = ()
    pattern: str = ""
    hint: str = ""

    @property
    def match_key(self) -> str:
        return header_key(self.label)


@dataclass(frozen=True)
class RowCheck:
    """A check across two columns of one row (`column` must not exceed `than`)."""

    check: str
    column: str
    than: str


@dataclass(frozen=True)
class Form:
    """One form of the campaign: a table (xlsx) or a report (docx)."""

    id: str
    kind: str
    attachment: str
    title: str
    submitter: str
    deadline: date
    columns: tuple[Column, ...] = ()
    row_checks: tuple[RowCheck, ...] = ()
    sections: tuple[str, ...] = ()
    guidance: tuple[str, ...] = ()
    #: Other headings senders use for a section ("下一步工作计划" for "四、工作计划").
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    #: Whether the campaign's listed submitters (the cities) are the ones who send it.
    from_submitters: bool = False

    @property
    def display_name(self) -> str:
        return f"{self.attachment}《{self.title}》"

    def column(self, key: str) -> Column:
        for column in self.columns:
            if column.key == key:
                return column
        raise KeyError(key)


@dataclass(frozen=True)
class Submitter:
    """An expected submitter (a city department) and how to recognise its mail."""

    name: str
    match: str
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Campaign:
    """Everything one notice asks for."""

    id: str
    title: str
    document_number: str
    timezone: ZoneInfo
    example_ids: frozenset[str]
    forms: tuple[Form, ...]
    submitters: tuple[Submitter, ...] = field(default=())

    def form(self, form_id: str) -> Form:
        for form in self.forms:
            if form.id == form_id:
                return form
        raise KeyError(form_id)

    def deadline_end(self, form: Form) -> datetime:
        """Return the first instant after `form`'s deadline day, in the campaign's zone."""
        return datetime.combine(form.deadline + timedelta(days=1), time(0), tzinfo=self.timezone)

    def is_late(self, form: Form, received: datetime) -> bool:
        return received >= self.deadline_end(form)


def header_key(text: str) -> str:
    """Normalise a header cell for matching: NFKC, no spaces, no bracketed hints.

    "申领\\n年份\\n（2018/2019）" and "申领年份(2018/2019)" both become "申领年份".
    """
    normal = unicodedata.normalize("NFKC", text)
    normal = re.sub(r"\s+", "", normal)
    normal = re.sub(r"\([^)]*\)", "", normal)
    return normal


def load_campaign(path: Path) -> Campaign:
    """Read and validate the campaign file at `path`."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CampaignError(f"找不到活动规则文件 {path}：请检查配置项 [campaign] rules。") from err
    except tomllib.TOMLDecodeError as err:
        raise CampaignError(f"活动规则文件 {path} 格式错误：{err}") from err

    try:
        header = raw["campaign"]
        forms = tuple(_form(item) for item in raw["forms"])
        submitters = tuple(
            Submitter(name=item["name"], match=item.get("match", item["name"]),
                      addresses=tuple(a.lower() for a in item.get("addresses", ())))
            for item in raw.get("submitters", ())
        )
        return Campaign(
            id=str(header["id"]),
            title=header["title"],
            document_number=header.get("document_number", ""),
            timezone=ZoneInfo(header.get("timezone", "Asia/Shanghai")),
            example_ids=frozenset(header.get("example_ids", ())),
            forms=forms,
            submitters=submitters,
        )
    except KeyError as err:
        raise CampaignError(f"活动规则文件 {path} 缺少必填项 {err}。") from err
    except (TypeError, ValueError) as err:
        raise CampaignError(f"活动规则文件 {path} 的取值无效：{err}") from err


def _form(item: dict[str, Any]) -> Form:
    kind = item["kind"]
    if kind not in FORM_KINDS:
        raise ValueError(f"表单 {item.get('id')} 的 kind = {kind!r}，应为 table 或 report")
    deadline = item["deadline"]
    if not isinstance(deadline, date):
        raise ValueError(f"表单 {item.get('id')} 的 deadline = {deadline!r}，应写成日期，例如 2020-09-18")

    columns = tuple(_column(c) for c in item.get("columns", ()))
    keys = {c.key for c in columns}
    checks = tuple(RowCheck(check=c["check"], column=c["column"], than=c["than"]) for c in item.get("row_checks", ()))
    for check in checks:
        if check.column not in keys or check.than not in keys:
            raise ValueError(f"表单 {item['id']} 的行检查引用了不存在的列：{check.column} / {check.than}")

    return Form(
        id=item["id"], kind=kind, attachment=item.get("attachment", ""), title=item["title"],
        submitter=item.get("submitter", ""), deadline=deadline, columns=columns, row_checks=checks,
        sections=tuple(item.get("sections", ())), guidance=tuple(item.get("guidance", ())),
        from_submitters=bool(item.get("from_submitters", False)),
        aliases={section: tuple(names) for section, names in item.get("aliases", {}).items()},
    )


def _column(item: dict[str, Any]) -> Column:
    column_type = item.get("type", "text")
    if column_type not in COLUMN_TYPES:
        raise ValueError(f"列 {item.get('label')} 的 type = {column_type!r}，应为 {sorted(COLUMN_TYPES)} 之一")
    label = item["label"]
    return Column(
        label=label, key=item.get("key", header_key(label)), type=column_type,
        required=item.get("required", True), choices=tuple(item.get("choices", ())),
        pattern=item.get("pattern", ""), hint=item.get("hint", ""),
    )
