"""Recognise a Form 2 report by its section headings and check each section's text.

A heading matches with or without its "一、" prefix, because Word's automatic
numbering keeps the prefix out of the text. A document is taken for a report
when at least two of the four headings are found; fewer means it is some other
document, and it is returned as not a form.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from parsers.document import Paragraph
from rules.campaign import Campaign, Form
from rules.findings import Finding

#: Headings found for a document to count as the report at all.
MIN_HEADINGS = 2
#: A heading paragraph may carry a few extra characters ("：", a trailing note).
HEADING_SLACK = 6

_PREFIX = re.compile(r"^[（(]?[一二三四五六七八九十0-9]+[)）]?[、.．,，:：\s]*")
_UNIT = re.compile(r"项目牵头单位[:：]\s*(.+?)[)）]?$")


@dataclass
class ReportResult:
    """A recognised report: its unit, the text of each section, and findings."""

    form: Form
    unit: str
    title: str
    sections: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


def read_report(paragraphs: list[Paragraph], campaign: Campaign, *, file: str) -> ReportResult | None:
    """Find a report form in `paragraphs` and check it; None when it is no report."""
    for form in campaign.forms:
        if form.kind != "report":
            continue
        result = _read(form, paragraphs, file)
        if result is not None:
            return result
    return None


def _read(form: Form, paragraphs: list[Paragraph], file: str) -> ReportResult | None:
    bases = [[_base(section), *(_base(alias) for alias in form.aliases.get(section, ()))] for section in form.sections]
    starts: dict[int, int] = {}
    inline: dict[int, str] = {}
    for index, paragraph in enumerate(paragraphs):
        heading = _split_heading(paragraph.text, bases)
        if heading is not None and heading[0] not in starts:
            starts[heading[0]] = index
            inline[heading[0]] = heading[1]
    if len(starts) < MIN_HEADINGS:
        return None

    first_heading = min(starts.values())
    title = paragraphs[0].text if first_heading > 0 else ""
    result = ReportResult(form=form, unit=_unit(paragraphs[:first_heading]) or title, title=title)

    ordered = sorted(starts.items(), key=lambda item: item[1])
    for rank, (position, index) in enumerate(ordered):
        end = ordered[rank + 1][1] if rank + 1 < len(ordered) else len(paragraphs)
        texts = [inline[position]] if inline[position] else []
        texts += [p.text for p in paragraphs[index + 1:end]]
        result.sections[form.sections[position]] = "\n".join(texts)

    for section in form.sections:
        text = result.sections.get(section)
        if text is None:
            result.findings.append(Finding(code="missing-section", file=file, params={"section": section}))
        elif not text.strip():
            result.findings.append(Finding(code="empty-section", file=file, params={"section": section}))
        elif _only_guidance(text, form.guidance):
            result.findings.append(Finding(code="unfilled-section", file=file,
                                           params={"section": section, "guidance": _guidance_quote(text)}))
    return result


def _base(heading: str) -> str:
    return _PREFIX.sub("", unicodedata.normalize("NFKC", heading)).strip()


def _split_heading(text: str, names: list[list[str]]) -> tuple[int, str] | None:
    """Return the section a heading paragraph opens and any text after it on the same line.

    A heading may be followed by its answer after a colon ("三、存在问题：暂无。") or by
    the outline's guidance in brackets ("三、存在问题（包括……）"), which is dropped.
    """
    stripped = _base(text)
    for position, candidates in enumerate(names):
        for name in candidates:
            if not stripped.startswith(name):
                continue
            rest = stripped[len(name):]
            if rest[:1] == "(" and ")" in rest:
                rest = rest[rest.index(")") + 1:].strip()
            if rest[:1] in ("：", ":"):
                return position, rest[1:].strip()
            if len(rest) <= HEADING_SLACK:
                return position, ""
    return None


def _only_guidance(text: str, guidance: tuple[str, ...]) -> bool:
    """True when every paragraph of a section starts with the outline's guidance, brackets aside."""
    lines = [line.strip().lstrip("（(【[ 　") for line in text.splitlines() if line.strip()]
    return bool(lines) and all(any(line.startswith(g) for g in guidance) for line in lines)


def _guidance_quote(text: str) -> str:
    """The start of the guidance a section holds, up to its first pause, for the message."""
    first = text.strip().lstrip("（(【[ 　")
    return re.split(r"[、，。,；;]", first, maxsplit=1)[0][:20]


def _unit(paragraphs: list[Paragraph]) -> str:
    for paragraph in paragraphs:
        match = _UNIT.search(unicodedata.normalize("NFKC", paragraph.text))
        if match:
            return match.group(1).strip()
    return ""
