"""Deterministic builders for the files and mails that reach the submission mailbox.

Every builder returns bytes and uses no randomness and no clock. Archive timestamps,
document properties, MIME boundaries and Received ids are fixed or derived from the
arguments, so the same call returns the same bytes on the same machine. Deflate output
may differ between zlib builds.

The spreadsheets follow the notice's templates: Form 1 (service providers) and Form 3
(city departments), each with the "附件N" line, the title, the filler line, the header,
"示例：", the example row, data rows and numbered empty rows up to 10. Form 2 is a Word
report with four numbered sections. All people, companies and phones are invented.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from email import encoders
from email.generator import BytesGenerator
from email.header import decode_header, make_header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.policy import compat32
from email.utils import encode_rfc2231, formataddr, parseaddr

import docx
from docx.shared import Pt
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

SUBMISSION_ADDRESS = "gyhlw@gdei.gov.cn"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ZIP_TYPE = "application/x-zip-compressed"

# Timestamp written into every archive member and document property, so output is stable.
FIXED_ZIP_TIME = (2020, 9, 8, 9, 30, 0)
FIXED_ISO_TIME = "2020-09-08T01:30:00Z"

# One spreadsheet row: numbers, text or None for an empty cell.
Row = list[Any]

_UTF8_NAME_FLAG = 0x800
# The builders fold long headers themselves, so the generator must not refold them.
_GENERATOR_POLICY = compat32.clone(linesep="\r\n", max_line_length=None)


# ---------------------------------------------------------------------------
# Form layouts
# ---------------------------------------------------------------------------

FORM1_HEADER: list[str] = [
    "序号",
    "申领年份(2018/2019)",
    "申请编号",
    "工业企业名称",
    "工业企业地址",
    "工业企业联系方式",
    "供应商（或平台商）名称",
    "代理商（或合作方）名称",
    "应用服务目录",
    "合同金额(万元)",
    "服务券金额(万元)",
    "使用情况(正常/部分使用/停止)",
    "实施不成功的原因（选填）",
]

# The same header as another spreadsheet tool exports it: line breaks and full-width parentheses.
FORM1_HEADER_WRAPPED: list[str] = [
    "序号",
    "申领\n年份\n（2018/2019）",
    "申请编号",
    "工业企业名称",
    "工业企业地址",
    "工业企业\n联系方式",
    "供应商\n（或平台商）名称",
    "代理商\n（或合作方）名称",
    "应用服务\n目录",
    "合同金额\n（万元）",
    "服务券金额\n（万元）",
    "使用情况\n（正常/部分使用/停止）",
    "实施不成功的原因\n（选填）",
]

FORM3_HEADER: list[str] = [
    "序号",
    "申领年份(2018/2019)",
    "申请编号",
    "工业企业名称",
    "供应商（或平台商）名称",
    "代理商（或合作方）名称",
    "检查结果（未检查/通过/不通过）",
    "备注",
]

FORM3_HEADER_WRAPPED: list[str] = [
    "序号",
    "申领\n年份\n（2018/2019）",
    "申请编号",
    "工业企业名称",
    "供应商\n（或平台商）名称",
    "代理商\n（或合作方）名称",
    "检查结果\n（未检查/通过/不通过）",
    "备注",
]

# Keyword names accepted by form1_row / form3_row, one per column in header order.
FORM1_KEYS: list[str] = [
    "序号",
    "申领年份",
    "申请编号",
    "工业企业名称",
    "工业企业地址",
    "工业企业联系方式",
    "供应商名称",
    "代理商名称",
    "应用服务目录",
    "合同金额",
    "服务券金额",
    "使用情况",
    "实施不成功的原因",
]

FORM3_KEYS: list[str] = [
    "序号",
    "申领年份",
    "申请编号",
    "工业企业名称",
    "供应商名称",
    "代理商名称",
    "检查结果",
    "备注",
]

# The notice's example rows (序号 1), which are not data.
FORM1_EXAMPLE_ROW: Row = [
    1, 2018, "SQ1811230118", "广州市番禺区宏声汽车音响设备有限公司", "广州市番禺区市桥街兴业路18号101",
    "13912345678", "广东精诚智能系统有限公司", "无", "智能排单调度", 28, 28, "正常", "无",
]
FORM3_EXAMPLE_ROW: Row = [
    1, 2018, "SQ1811230118", "广州市番禺区宏声汽车音响设备有限公司", "广东精诚智能系统有限公司",
    "无", "未检查", "未被抽到",
]

FORM1_TITLE = "上云上平台实施项目情况汇总表（服务商填写）"
FORM3_TITLE = "上云上平台项目情况检查表（工信部门填写）"
FORM1_FOOTER = "请将此表可编辑电子版于9月18日前发至邮箱：gyhlw@gdei.gov.cn。"

DEFAULT_PROVIDER = "广东星河数联科技有限公司"


@dataclass(frozen=True)
class _Enterprise:
    """One invented enterprise that a default data row is made from."""

    year: int
    application_no: str
    name: str
    address: str
    phone: str
    service: str
    contract: float
    voucher: float


# Application numbers are "SQ" + yymmdd + 4 digits, and yy matches the year.
_ENTERPRISES: list[_Enterprise] = [
    _Enterprise(2019, "SQ1904163275", "佛山市顺德区恒丰五金制品有限公司", "佛山市顺德区北滘镇工业大道28号",
                "13926471835", "设备联网上云", 20, 15),
    _Enterprise(2018, "SQ1810250964", "东莞市长盛塑胶模具有限公司", "东莞市长安镇振安中路66号3栋",
                "0769-85321406", "云MES", 35.5, 20),
    _Enterprise(2019, "SQ1906057812", "中山市宏达灯饰有限公司", "中山市古镇镇东兴路12号",
                "13715208846", "能耗监测管理", 12, 12),
    _Enterprise(2018, "SQ1812034519", "江门市新会区锦丰纸品有限公司", "江门市新会区会城今古洲路9号",
                "13829047731", "云上财务", 8.5, 8.5),
    _Enterprise(2019, "SQ1908213360", "惠州市伟业电子科技有限公司", "惠州市仲恺高新区和畅五路18号",
                "0752-26610938", "智能排单调度", 46, 30),
    _Enterprise(2018, "SQ1811159027", "汕头市澄海区金源玩具有限公司", "汕头市澄海区莲下镇工业区5号",
                "13502718864", "云CRM", 6, 6),
]

# Service providers that form3_row cycles through, because a city's Form 3 lists many providers.
_PROVIDERS: list[str] = [
    "广东星河数联科技有限公司",
    "广东锐拓网络科技有限公司",
    "广东云溪软件有限公司",
    "广州博创信息技术有限公司",
    "深圳市智汇云科技有限公司",
]

# Values that form3_row cycles through, so default Form 3 rows differ from each other.
_CHECK_RESULTS: list[tuple[str, str]] = [
    ("未检查", "未被抽到"),
    ("通过", "系统运行正常"),
    ("不通过", "企业未实际使用"),
    ("通过", "已实地检查"),
]


def _merge_overrides(keys: list[str], values: Row, overrides: Mapping[str, object]) -> Row:
    """Return values with the overridden columns replaced. Raise KeyError on an unknown key."""
    unknown = sorted(set(overrides) - set(keys))
    if unknown:
        raise KeyError(f"unknown column key(s) {unknown}, expected keys from {keys}")

    row = list(values)
    for key, value in overrides.items():
        row[keys.index(key)] = value
    return row


def form1_row(n: int = 2, **overrides: object) -> Row:
    """Return a valid Form 1 data row (13 values) with 序号 n.

    The default values come from an invented enterprise chosen by n, so rows 2, 3, 4 ...
    differ. Override any column by its key in FORM1_KEYS, e.g. 申请编号="SQ190523011".
    A row given as a dict is built with form1_row(**fields).
    """
    enterprise = _ENTERPRISES[(n - 2) % len(_ENTERPRISES)]
    values = [
        n, enterprise.year, enterprise.application_no, enterprise.name, enterprise.address,
        enterprise.phone, DEFAULT_PROVIDER, "无", enterprise.service, enterprise.contract,
        enterprise.voucher, "正常", None,
    ]
    return _merge_overrides(FORM1_KEYS, values, overrides)


def form3_row(n: int = 2, **overrides: object) -> Row:
    """Return a valid Form 3 data row (8 values) with 序号 n. Override columns by FORM3_KEYS."""
    enterprise = _ENTERPRISES[(n - 2) % len(_ENTERPRISES)]
    result, remark = _CHECK_RESULTS[(n - 2) % len(_CHECK_RESULTS)]
    values = [
        n, enterprise.year, enterprise.application_no, enterprise.name,
        _PROVIDERS[(n - 2) % len(_PROVIDERS)], "无", result, remark,
    ]
    return _merge_overrides(FORM3_KEYS, values, overrides)


# ---------------------------------------------------------------------------
# Spreadsheets
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _SheetLayout:
    """Fixed texts of one form template."""

    label: str
    title: str
    header: list[str]
    header_wrapped: list[str]
    example_row: Row
    footer: str | None
    widths: list[int]


_FORM1_LAYOUT = _SheetLayout(
    label="附件1",
    title=FORM1_TITLE,
    header=FORM1_HEADER,
    header_wrapped=FORM1_HEADER_WRAPPED,
    example_row=FORM1_EXAMPLE_ROW,
    footer=FORM1_FOOTER,
    widths=[6, 10, 16, 34, 32, 16, 28, 24, 14, 10, 10, 14, 20],
)

_FORM3_LAYOUT = _SheetLayout(
    label="附件3",
    title=FORM3_TITLE,
    header=FORM3_HEADER,
    header_wrapped=FORM3_HEADER_WRAPPED,
    example_row=FORM3_EXAMPLE_ROW,
    footer=None,
    widths=[6, 10, 16, 34, 28, 24, 18, 18],
)


@dataclass(frozen=True)
class _SheetOptions:
    """Variations that real senders introduce into the template."""

    keep_example: bool
    sheet_title: str
    blank_rows_on_top: int
    header_line_breaks: bool
    numbers_as_text: bool
    footer: bool
    pad_to: int
    filler: str | None
    phone: str


def _cell_value(value: object, numbers_as_text: bool) -> object:
    """Return value as the cell stores it. On request numbers become text such as "35.5"."""
    if numbers_as_text and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    return value


def _write_merged_line(ws: Worksheet, row: int, width: int, text: str, font: Font | None = None) -> None:
    """Write text into column A of row and merge it across the form's width."""
    cell = ws.cell(row=row, column=1, value=text)
    if font is not None:
        cell.font = font
    ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=width)


def _write_values(ws: Worksheet, row: int, values: Sequence[Any], numbers_as_text: bool) -> None:
    """Write one table row starting at column A. None leaves the cell empty."""
    for column, value in enumerate(values, start=1):
        if value is not None:
            ws.cell(row=row, column=column, value=_cell_value(value, numbers_as_text))


def _filler_line(filler: str | None, phone: str) -> str:
    """Return the "填报人：… 联系方式：…" line. Without a filler both fields stay blank."""
    if filler is None:
        return "填报人：    联系方式："
    return f"填报人：{filler}    联系方式：{phone}"


def _write_top(ws: Worksheet, layout: _SheetLayout, options: _SheetOptions) -> int:
    """Write the label, title, filler and header rows, and return the next free row."""
    width = len(layout.header)
    row = options.blank_rows_on_top + 1

    ws.cell(row=row, column=1, value=layout.label)
    row += 1

    _write_merged_line(ws, row, width, layout.title, Font(bold=True, size=16))
    ws.cell(row=row, column=1).alignment = Alignment(horizontal="center")
    row += 1

    _write_merged_line(ws, row, width, _filler_line(options.filler, options.phone))
    row += 1

    header = layout.header_wrapped if options.header_line_breaks else layout.header
    _write_values(ws, row, header, numbers_as_text=False)
    for column in range(1, width + 1):
        ws.cell(row=row, column=column).alignment = Alignment(wrap_text=True, vertical="center")
        ws.cell(row=row, column=column).font = Font(bold=True)
    return row + 1


def _write_body(ws: Worksheet, layout: _SheetLayout, rows: Sequence[Sequence[Any]], options: _SheetOptions,
                first_row: int) -> int:
    """Write the example, the data rows and the numbered empty rows, and return the next free row."""
    width = len(layout.header)
    row = first_row

    if options.keep_example:
        _write_merged_line(ws, row, width, "示例：")
        _write_values(ws, row + 1, layout.example_row, options.numbers_as_text)
        row += 2

    for values in rows:
        if len(values) != width:
            raise ValueError(f"a {layout.label} row has {width} values, got {len(values)}: {values!r}")
        _write_values(ws, row, values, options.numbers_as_text)
        row += 1

    # The template numbers every row up to 10. Only 序号 is filled where there is no data.
    next_number = _next_row_number(rows, options.keep_example)
    for number in range(next_number, options.pad_to + 1):
        _write_values(ws, row, [number], options.numbers_as_text)
        row += 1
    return row


def _next_row_number(rows: Sequence[Sequence[Any]], keep_example: bool) -> int:
    """Return the 序号 of the first empty row: one past the largest numeric 序号 in rows.

    Without a numeric 序号 the count of rows above (example included) decides.
    """
    numbers = [int(values[0]) for values in rows if str(values[0]).strip().isdigit()]
    if numbers:
        return max(numbers) + 1
    return (1 if keep_example else 0) + len(rows) + 1


def _workbook_bytes(layout: _SheetLayout, rows: Sequence[Sequence[Any]], options: _SheetOptions) -> bytes:
    """Lay out one form on a single sheet and return stable xlsx bytes."""
    workbook = Workbook()
    ws = workbook.active
    ws.title = options.sheet_title
    for column, width in enumerate(layout.widths, start=1):
        ws.column_dimensions[get_column_letter(column)].width = width

    row = _write_top(ws, layout, options)
    row = _write_body(ws, layout, rows, options, row)
    if options.footer and layout.footer is not None:
        _write_merged_line(ws, row, len(layout.header), layout.footer)

    workbook.properties.creator = "Administrator"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return _stable_zip(buffer.getvalue())


def form1_workbook(rows: Sequence[Sequence[Any]], *, keep_example: bool = True, sheet_title: str = "附件1",
                   blank_rows_on_top: int = 0, header_line_breaks: bool = False,
                   numbers_as_text: bool = False, footer: bool = True, pad_to: int = 10,
                   filler: str | None = "陈建华", phone: str = "13925168820") -> bytes:
    """Build a Form 1 xlsx (附件1) holding rows below the header.

    With keep_example the "示例：" row and the example row (序号 1) come first, as in the
    notice, so data rows normally carry 序号 2, 3, ... (form1_row(n) sets 序号 n). Rows after
    the data up to pad_to carry only 序号. numbers_as_text stores every number as text, and
    header_line_breaks writes FORM1_HEADER_WRAPPED, as another spreadsheet tool exports them.
    """
    options = _SheetOptions(keep_example, sheet_title, blank_rows_on_top, header_line_breaks,
                            numbers_as_text, footer, pad_to, filler, phone)
    return _workbook_bytes(_FORM1_LAYOUT, rows, options)


def form3_workbook(rows: Sequence[Sequence[Any]], *, keep_example: bool = True, sheet_title: str = "附件3",
                   blank_rows_on_top: int = 0, header_line_breaks: bool = False,
                   numbers_as_text: bool = False, pad_to: int = 10,
                   filler: str | None = "黄志明", phone: str = "0757-83381200") -> bytes:
    """Build a Form 3 xlsx (附件3). The options mean what they mean for form1_workbook.

    The notice's Form 3 has no footer line, so this builder writes none.
    """
    options = _SheetOptions(keep_example, sheet_title, blank_rows_on_top, header_line_breaks,
                            numbers_as_text, False, pad_to, filler, phone)
    return _workbook_bytes(_FORM3_LAYOUT, rows, options)


# ---------------------------------------------------------------------------
# Word reports (Form 2)
# ---------------------------------------------------------------------------

FORM2_SECTIONS: list[str] = ["一、项目基本情况", "二、项目建设情况", "三、存在问题", "四、工作计划"]

_FORM2_TEXT: dict[str, list[str]] = {
    "项目基本情况": [
        "{company}成立于2006年，是集研发、生产、销售于一体的高新技术企业，拥有市级工程技术研究中心。",
        "本项目总投入1200万元，其中自筹资金900万元，财政资金300万元。主要建设内容包括设备联网改造、"
        "生产数据采集和工业互联网平台应用，考核目标为设备联网率达到85%以上、生产效率提升20%。",
    ],
    "项目建设情况": [
        "截至2020年8月底，项目已完成投资980万元，完成236台（套）设备联网，平台主要功能已上线运行，"
        "生产效率提升约12%。",
        "财政资金按规定专款专用、单独核算，自筹资金按计划到位。",
    ],
    "存在问题": [
        "受新冠肺炎疫情影响，部分设备到货延迟，项目进度较原计划滞后约一个月。",
    ],
    "工作计划": [
        "一是加快剩余设备安装调试，力争于2020年11月底前完成全部建设内容；",
        "二是整理项目档案和财务凭证，做好验收准备工作；",
        "三是建议地市工信部门协助对接验收专家。",
    ],
}


def _bare_section(name: str) -> str:
    """Return a section name without its "一、" prefix. Raise ValueError if it is unknown."""
    bare = re.sub(r"^[一二三四]、", "", name)
    if bare not in _FORM2_TEXT:
        raise ValueError(f"unknown Form 2 section {name!r}, expected one of {FORM2_SECTIONS}")
    return bare


def form2_report(company: str, *, omit: Iterable[str] = (), empty: Iterable[str] = (),
                 heading_style: str = "Normal", numbered_prefix: bool = True,
                 project: str = "工业互联网平台") -> bytes:
    """Build a Form 2 docx report for company with the four sections of the outline.

    omit drops a section (heading and text) and empty keeps the heading without text. Both
    take names with or without the prefix, e.g. "三、存在问题" or "存在问题".
    heading_style is the paragraph style of the section headings. Senders mostly use "Normal".
    """
    omitted = {_bare_section(name) for name in omit}
    emptied = {_bare_section(name) for name in empty}
    document = docx.Document()

    title = document.add_paragraph()
    title.add_run(f"{company}{project}标杆示范项目建设情况报告").bold = True
    document.add_paragraph(f"（项目牵头单位：{company}）")

    for section in FORM2_SECTIONS:
        bare = _bare_section(section)
        if bare in omitted:
            continue
        document.add_paragraph(section if numbered_prefix else bare, style=heading_style)
        if bare in emptied:
            continue
        for text in _FORM2_TEXT[bare]:
            paragraph = document.add_paragraph(text.format(company=company))
            paragraph.paragraph_format.first_line_indent = Pt(21)

    document.core_properties.author = "Administrator"
    buffer = io.BytesIO()
    document.save(buffer)
    return _stable_zip(buffer.getvalue())


# ---------------------------------------------------------------------------
# Zip archives
# ---------------------------------------------------------------------------


def _fixed_zipinfo(name: str) -> zipfile.ZipInfo:
    """Return a ZipInfo with fixed time and attributes, as an MS-DOS host writes it."""
    info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 0
    info.external_attr = 0x20  # MS-DOS "archive" attribute
    return info


def _stable_zip(data: bytes) -> bytes:
    """Rewrite an OOXML package with fixed member times and fixed document timestamps.

    openpyxl stamps the save time into docProps/core.xml and zipfile stamps the current
    time on every member, so both are replaced to make the bytes reproducible.
    """
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == "docProps/core.xml":
                content = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", FIXED_ISO_TIME.encode(), content)
            target.writestr(_fixed_zipinfo(info.filename), content)
    return buffer.getvalue()


def _placeholder_name(index: int, length: int) -> str:
    """Return an ASCII name of exactly length bytes that is unique for index."""
    name = str(index).zfill(length)
    if len(name) != length:
        raise ValueError(f"member name {index} is too short to patch in place ({length} bytes)")
    return name


def _rewrite_member_headers(data: bytes, names: Mapping[bytes, bytes], utf8_flag: bool) -> bytes:
    """Replace stored member names by raw names of equal length and set or clear the UTF-8 flag.

    zipfile sets the flag only on non-ASCII names and cannot store non-UTF-8 names, so both
    the central directory entries and the local file headers are patched in place. Every
    name keeps its length, so all offsets in the archive stay valid.
    """
    patched = bytearray(data)
    end = data.rindex(b"PK\x05\x06")
    count, _size, directory = struct.unpack_from("<HII", data, end + 10)

    position = directory
    for _ in range(count):
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, position + 28)
        local, = struct.unpack_from("<I", data, position + 42)
        raw = names[data[position + 46:position + 46 + name_length]]
        if len(raw) != name_length:
            raise ValueError(f"member name {raw!r} does not fit the stored name of {name_length} bytes")

        for flags_at, name_at in ((position + 8, position + 46), (local + 6, local + 30)):
            flags, = struct.unpack_from("<H", data, flags_at)
            flags = flags | _UTF8_NAME_FLAG if utf8_flag else flags & ~_UTF8_NAME_FLAG
            struct.pack_into("<H", patched, flags_at, flags)
            patched[name_at:name_at + name_length] = raw

        position += 46 + name_length + extra_length + comment_length
    return bytes(patched)


def zip_archive(members: Mapping[str, bytes], *, names: str = "utf-8") -> bytes:
    """Build a zip of members (name to content) in the given order.

    names="utf-8" stores UTF-8 names with the UTF-8 flag (0x800) set on every member, ASCII
    names included. names="gbk" stores GBK-encoded names without the flag, as Chinese
    Windows tools do, so a reader that follows the zip specification decodes them as CP437.
    """
    if names not in ("utf-8", "gbk"):
        raise ValueError(f"names must be 'utf-8' or 'gbk', got {names!r}")

    # Members are written under ASCII placeholders of the final byte length, then renamed.
    raw_names: dict[bytes, bytes] = {}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, (name, content) in enumerate(members.items()):
            raw = name.encode(names)
            placeholder = _placeholder_name(index, len(raw))
            raw_names[placeholder.encode("ascii")] = raw
            archive.writestr(_fixed_zipinfo(placeholder), content)

    return _rewrite_member_headers(buffer.getvalue(), raw_names, utf8_flag=names == "utf-8")


# ---------------------------------------------------------------------------
# Mail
# ---------------------------------------------------------------------------


def _angle(message_id: str) -> str:
    """Return message_id enclosed in angle brackets."""
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def _digest(*parts: str) -> str:
    """Return a stable hex digest that seeds boundaries and Received ids."""
    return hashlib.sha1("\0".join(parts).encode("utf-8")).hexdigest()


def _boundary(message_id: str, label: str) -> str:
    """Return a boundary that is fixed for one message and differs per multipart level."""
    return f"----=_Part_{label}_{_digest(message_id, label)[:20]}"


def _encoded_words(text: str, charset: str) -> list[str]:
    """Encode text as base64 encoded-words (RFC 2047) labelled with charset.

    Each word contains at most 45 bytes, so it stays under 76 characters, and no character
    is split across two words.
    """
    chunks: list[bytes] = []
    current = b""
    for character in text:
        encoded = character.encode(charset)
        if current and len(current) + len(encoded) > 45:
            chunks.append(current)
            current = b""
        current += encoded
    chunks.append(current)
    return [f"=?{charset}?B?{base64.b64encode(chunk).decode('ascii')}?=" for chunk in chunks]


def _header_text(text: str, charset: str) -> str:
    """Return text for an unstructured header, folded into encoded-words if it is not ASCII."""
    if text.isascii():
        return text
    return "\r\n ".join(_encoded_words(text, charset))


def _encode_address(address: str, charset: str) -> str:
    """Return address with its display name as RFC 2047 encoded-words if it is not ASCII."""
    name, mailbox = parseaddr(address)
    if not mailbox:
        raise ValueError(f"no mail address in {address!r}")
    if name.isascii():
        return formataddr((name, mailbox))
    return f"{' '.join(_encoded_words(name, charset))} <{mailbox}>"


def _received_header(sender: str, to: str, message_id: str, when: str) -> str:
    """Return a Postfix-style Received header value for delivery at mx.gdei.gov.cn.

    The sending host is mail.<sender domain>, with an address from 203.0.113.0/24 (a range
    reserved for documentation) and a queue id derived from the Message-ID.
    """
    domain = parseaddr(sender)[1].rpartition("@")[2]
    digest = _digest(message_id, "received")
    address = f"203.0.113.{int(digest[:2], 16) % 254 + 1}"
    queue_id = digest[2:17].upper()
    zone = " (CST)" if when.endswith("+0800") else ""
    return (f"from mail.{domain} (mail.{domain} [{address}])\r\n"
            f"\tby mx.gdei.gov.cn (Postfix) with ESMTPS id {queue_id}\r\n"
            f"\tfor <{parseaddr(to)[1]}>; {when}{zone}")


def _filename_parameter(parameter: str, filename: str, style: str) -> str:
    """Return 'parameter=value' for filename in the requested style.

    "rfc2231" gives filename*=utf-8''<percent-encoded>. "rfc2047" gives
    filename="=?gb2312?B?...?=" (GBK when a character is outside GB2312), with the
    encoded-words folded inside the quoted string. RFC 2047 forbids that, but Foxmail
    writes it.
    """
    if filename.isascii():
        return f'{parameter}="{filename}"'
    if style == "rfc2231":
        return f"{parameter}*={encode_rfc2231(filename, 'utf-8', '')}"
    if style != "rfc2047":
        raise ValueError(f"filename_style must be 'rfc2231' or 'rfc2047', got {style!r}")

    try:
        filename.encode("gb2312")
        charset = "gb2312"
    except UnicodeEncodeError:
        charset = "gbk"
    return f'{parameter}="' + "\r\n\t".join(_encoded_words(filename, charset)) + '"'


def _name_part(part: Message, mime_type: str, filename: str, style: str) -> None:
    """Set Content-Type (with name) and Content-Disposition: attachment (with filename)."""
    part.replace_header("Content-Type", f"{mime_type};\r\n\t{_filename_parameter('name', filename, style)}")
    part["Content-Disposition"] = f"attachment;\r\n\t{_filename_parameter('filename', filename, style)}"


def _attachment_part(filename: str, data: bytes, mime_type: str, style: str) -> MIMEBase:
    """Return a base64 attachment with its name in both Content-Type and Content-Disposition."""
    maintype, _, subtype = mime_type.partition("/")
    part = MIMEBase(maintype, subtype)
    del part["MIME-Version"]
    part.set_payload(data)
    encoders.encode_base64(part)
    _name_part(part, mime_type, filename, style)
    return part


def _text_parts(body: str, charset: str, boundary: str) -> MIMEMultipart:
    """Return multipart/alternative with body as text/plain and as a minimal text/html."""
    plain_body = body.replace("\r\n", "\n").replace("\n", "\r\n") + "\r\n"
    plain = MIMEText(plain_body, "plain", charset)
    del plain["MIME-Version"]

    lines = "".join(f"<div>{html.escape(line) or '<br>'}</div>" for line in body.splitlines())
    markup = (f'<html><head><meta http-equiv="Content-Type" content="text/html; charset={charset}">'
              f"</head><body>{lines}</body></html>")
    rich = MIMEText(markup, "html", charset)
    del rich["MIME-Version"]

    alternative = MIMEMultipart("alternative", boundary=boundary, _subparts=[plain, rich])
    del alternative["MIME-Version"]
    return alternative


def _put_headers(message: Message, headers: Sequence[tuple[str, str]]) -> None:
    """Put headers on top of message in order, keeping MIME-Version and Content-Type last."""
    content_type = message["Content-Type"]
    del message["Content-Type"]
    del message["MIME-Version"]

    for name, value in headers:
        message[name] = value

    message["MIME-Version"] = "1.0"
    message["Content-Type"] = content_type


def _standard_headers(*, sender: str, to: str, subject: str, message_id: str, date: str,
                      charset: str, received: str | None, reply_to: str | None,
                      extra: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """Return the header list of a sent mail, topmost first."""
    headers: list[tuple[str, str]] = []
    if received is not None:
        headers.append(("Received", _received_header(sender, to, message_id, received)))

    headers += [
        ("Date", date),
        ("From", _encode_address(sender, charset)),
        ("To", _encode_address(to, charset)),
        ("Subject", _header_text(subject, charset)),
        ("Message-ID", _angle(message_id)),
    ]
    if reply_to is not None:
        headers.append(("Reply-To", _encode_address(reply_to, charset)))
    for name, value in (extra or {}).items():
        headers.append((name, value))
    return headers


def _serialize(message: Message) -> bytes:
    """Return message as bytes with CRLF line ends and no From_ line mangling."""
    buffer = io.BytesIO()
    BytesGenerator(buffer, mangle_from_=False, policy=_GENERATOR_POLICY).flatten(message)
    return buffer.getvalue()


def _compose(*, sender: str, subject: str, to: str, body: str,
             attachments: Sequence[tuple[str, bytes, str]], message_id: str, date: str,
             reply_to: str | None, headers: Mapping[str, str] | None, charset: str,
             filename_style: str, received: str | None,
             extra_parts: Sequence[Message] = ()) -> bytes:
    """Assemble multipart/mixed: the text alternative, the attachments, then extra_parts."""
    mixed = MIMEMultipart("mixed", boundary=_boundary(message_id, "mixed"))
    mixed.preamble = "This is a multi-part message in MIME format."
    mixed.attach(_text_parts(body, charset, _boundary(message_id, "alternative")))

    for filename, data, mime_type in attachments:
        mixed.attach(_attachment_part(filename, data, mime_type, filename_style))
    for part in extra_parts:
        mixed.attach(part)

    _put_headers(mixed, _standard_headers(
        sender=sender, to=to, subject=subject, message_id=message_id, date=date, charset=charset,
        received=received, reply_to=reply_to, extra=headers))
    return _serialize(mixed)


def mail(*, sender: str, subject: str, to: str = SUBMISSION_ADDRESS,
         body: str = "您好，附件是我单位报送材料，请查收。",
         attachments: Sequence[tuple[str, bytes, str]] = (), message_id: str,
         date: str = "Thu, 10 Sep 2020 09:15:16 +0800", reply_to: str | None = None,
         headers: Mapping[str, str] | None = None, charset: str = "utf-8",
         filename_style: str = "rfc2231", received: str | None = None) -> bytes:
    """Build a submission mail: multipart/mixed with a text/plain + text/html body and attachments.

    attachments are (filename, data, mime type). charset encodes the body, the subject and
    the display names, so "gb2312" raises UnicodeEncodeError for characters outside GB2312.
    filename_style is "rfc2231" or "rfc2047" (encoded-words inside the quoted parameter).
    received, a date, adds a topmost Received header for delivery at mx.gdei.gov.cn at that
    time. headers are appended after the standard ones. Lines end in CRLF.
    """
    return _compose(sender=sender, subject=subject, to=to, body=body, attachments=attachments,
                    message_id=message_id, date=date, reply_to=reply_to, headers=headers,
                    charset=charset, filename_style=filename_style, received=received)


def _decoded_subject(message: Message) -> str:
    """Return the decoded Subject of a parsed message, or "" if it has none."""
    raw = message.get("Subject", "")
    return str(make_header(decode_header(raw))) if raw else ""


def forwarded(*, sender: str, subject: str, inner: bytes, message_id: str, **kw: Any) -> bytes:
    """Build a mail that forwards inner as an attached message/rfc822 part.

    kw are the other keyword arguments of mail(), e.g. body, date, received or further
    attachments. The part is named "<inner subject>.eml" in kw's filename_style.
    """
    options: dict[str, Any] = {
        "to": SUBMISSION_ADDRESS, "body": "转发的邮件，请查收。", "attachments": (),
        "date": "Thu, 10 Sep 2020 09:15:16 +0800", "reply_to": None, "headers": None,
        "charset": "utf-8", "filename_style": "rfc2231", "received": None,
    }
    unknown = sorted(set(kw) - set(options))
    if unknown:
        raise TypeError(f"forwarded() got unexpected keyword arguments {unknown}")
    options.update(kw)

    inner_message = BytesParser(policy=compat32).parsebytes(inner)
    part = MIMEMessage(inner_message)
    del part["MIME-Version"]
    filename = _filename_parameter("filename", f"{_decoded_subject(inner_message)}.eml", options["filename_style"])
    part["Content-Disposition"] = f"attachment;\r\n\t{filename}"

    return _compose(sender=sender, subject=subject, message_id=message_id, extra_parts=[part], **options)


def auto_reply(*, sender: str, message_id: str, in_reply_to: str | None = None,
               to: str = SUBMISSION_ADDRESS, date: str = "Wed, 16 Sep 2020 09:02:42 +0800",
               received: str | None = None,
               original_subject: str = "上云上平台实施项目情况汇总表已收到") -> bytes:
    """Build an out-of-office reply: Auto-Submitted: auto-replied, subject "自动回复: ...".

    The mail is multipart/alternative as Outlook sends it, with no attachment.
    """
    message = _text_parts("您好，我于9月14日至9月25日休假，期间无法及时回复邮件。\n"
                          "急事请联系同事林晓彤：13926000417。谢谢！", "utf-8",
                          _boundary(message_id, "alternative"))
    headers = _standard_headers(sender=sender, to=to, subject=f"自动回复: {original_subject}",
                                message_id=message_id, date=date, charset="utf-8",
                                received=received, reply_to=None, extra=None)
    if in_reply_to is not None:
        headers.append(("In-Reply-To", _angle(in_reply_to)))
    headers.append(("Auto-Submitted", "auto-replied"))

    _put_headers(message, headers)
    return _serialize(message)


def _delivery_status(reporter: str, recipient: str, arrival: str) -> Message:
    """Return a message/delivery-status part for one failed recipient (RFC 3464)."""
    per_message = Message()
    per_message["Reporting-MTA"] = f"dns; {reporter}"
    per_message["Arrival-Date"] = arrival

    per_recipient = Message()
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Original-Recipient"] = f"rfc822;{recipient}"
    per_recipient["Action"] = "failed"
    per_recipient["Status"] = "5.1.1"
    per_recipient["Diagnostic-Code"] = f"smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown"

    status = Message()
    status["Content-Description"] = "Delivery report"
    status["Content-Type"] = "message/delivery-status"
    status.set_payload([per_message, per_recipient])
    return status


def bounce(*, message_id: str, original: bytes, date: str = "Thu, 17 Sep 2020 10:31:04 +0800",
           received: str | None = None) -> bytes:
    """Build a Postfix non-delivery report for original, which our mailbox had sent.

    The report comes from MAILER-DAEMON at the recipient's domain with Return-Path <>, as
    multipart/report; report-type=delivery-status with a text notice, a
    message/delivery-status part and original as message/rfc822.
    """
    original_message = BytesParser(policy=compat32).parsebytes(original)
    recipient = parseaddr(original_message.get("To", ""))[1] or "unknown@example.com"
    returned_to = parseaddr(original_message.get("From", ""))[1] or SUBMISSION_ADDRESS
    reporter = f"mail.{recipient.rpartition('@')[2]}"

    notice = MIMEText(
        f"This is the mail system at host {reporter}.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients. It's attached below.\r\n\r\n"
        f"<{recipient}>: host {reporter} said: 550 5.1.1 <{recipient}>:\r\n"
        "    Recipient address rejected: User unknown (in reply to RCPT TO command)\r\n",
        "plain", "us-ascii")
    del notice["MIME-Version"]
    notice["Content-Description"] = "Notification"
    returned = MIMEMessage(original_message)
    del returned["MIME-Version"]
    returned["Content-Description"] = "Undelivered Message"

    report = MIMEMultipart("report", boundary=_boundary(message_id, "report"), report_type="delivery-status")
    report.preamble = "This is a MIME-encapsulated message."
    report.attach(notice)
    report.attach(_delivery_status(reporter, recipient, original_message.get("Date", date)))
    report.attach(returned)

    headers: list[tuple[str, str]] = [("Return-Path", "<>")]
    if received is not None:
        headers.append(("Received", _received_header(f"MAILER-DAEMON@{reporter}", returned_to,
                                                     message_id, received)))
    headers += [
        ("Date", date),
        ("From", f"MAILER-DAEMON@{reporter} (Mail Delivery System)"),
        ("Subject", "Undelivered Mail Returned to Sender"),
        ("To", returned_to),
        ("Auto-Submitted", "auto-replied"),
        ("Message-ID", _angle(message_id)),
    ]
    _put_headers(report, headers)
    return _serialize(report)


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """Return one PNG chunk: length, type, data and the CRC of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def inline_image_png() -> bytes:
    """Return a valid 1x1 RGB PNG, e.g. for a signature image in a mail."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    scanline = b"\x00" + bytes((0x1F, 0x5F, 0xA8))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(scanline, 9)) + _png_chunk(b"IEND", b""))
