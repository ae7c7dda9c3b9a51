"""Findings: what is wrong with a submission, as data with a Chinese message.

A finding has a stable kebab-case code, a severity and the values its message
quotes (file, sheet, Excel row, column, value found). The message template for
each code is the one place where the submitter's wording of that problem lives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR = "error"
WARNING = "warning"
INFO = "info"

# Templates use str.format fields; `where` is filled in by Finding.message().
MESSAGES: dict[str, str] = {
    # Cells of a table form.
    "missing-cell": "{where}“{column}”为空，请填写。",
    "invalid-year": "{where}“{column}”填写为“{value}”，应为 2018 或 2019，请改正。",
    "invalid-pattern": "{where}“{column}”填写为“{value}”，格式应为{hint}，请改正。",
    "invalid-choice": "{where}“{column}”填写为“{value}”，请改为以下之一：{choices}。",
    "invalid-number": "{where}“{column}”填写为“{value}”，请改为数字（单位：万元），例如 28 或 10.5。",
    "amount-exceeds": "{where}“{column}”为 {value} 万元，大于“{other_column}”{other_value} 万元，"
                      "{column}不能超过{other_column}，请核对后更正。",
    "formula-without-value": "{where}“{column}”是公式，但文件中没有保存计算结果，无法读取数值。"
                             "请在 Excel 或 WPS 中打开文件，确认公式已计算后重新保存（或复制后“选择性粘贴为数值”）再发送。",
    "missing-column": "{where}的表头中找不到“{column}”列。请使用通知所附模板填写，不要删除、合并或改名表头中的列。",
    "duplicate-id": "{where}“{column}”“{value}”与第 {first_row} 行重复，同一项目只需填写一行，请核对后删除或更正。",
    "no-data-rows": "表中没有填写任何数据行（模板的示例行不计入），请在示例行下方逐行填写后重新发送。",
    # Sections of a report.
    "missing-section": "报告缺少“{section}”部分，请按提纲补齐四个部分后重新发送。",
    "empty-section": "报告“{section}”部分没有填写内容，请补充。",
    "unfilled-section": "报告“{section}”部分仍是提纲的说明文字（{guidance}……），请填写实际情况。",
    # Whole files.
    "not-a-form": "未能识别为本次通知要求的表格：表格中找不到附件1或附件3的表头。请使用通知所附模板填写后重新发送。",
    "not-a-report": "未能识别为本次通知要求的报告：文档中找不到附件2提纲的四个部分"
                    "（一、项目基本情况；二、项目建设情况；三、存在问题；四、工作计划）。请按提纲撰写后重新发送。",
    "encrypted-file": "文件设置了打开密码，无法读取。请取消密码后重新保存，再发送未加密的文件。",
    "encrypted-archive": "压缩包设置了密码，无法解压{member_note}。请发送未加密的压缩包。",
    "unsafe-path": "压缩包中的“{member}”路径不安全（含有“..”或绝对路径），已拒收。"
                   "请把报告文件直接放入压缩包后重新发送。",
    "member-too-large": "压缩包中的“{member}”解压后超过 {limit_mb} MB 的上限，已拒收。"
                        "请检查该文件是否正确后重新打包发送。",
    "archive-too-large": "压缩包解压后的总大小超过 {limit_mb} MB 的上限，“{member}”及之后的文件未处理。请分开发送。",
    "suspicious-ratio": "压缩包中的“{member}”压缩比异常（约 {ratio}:1），疑似损坏或恶意文件，已拒收。请重新打包发送。",
    "too-many-members": "压缩包中有 {count} 个文件，超过 {limit} 个的上限。请分开发送。",
    "archive-too-deep": "压缩包嵌套超过 {limit} 层，内层文件未处理。请直接打包报告文件后发送。",
    "empty-archive": "压缩包中没有可处理的文件。请确认已放入报告（.docx）后重新发送。",
    "unreadable-archive": "压缩包已损坏，无法解压。请重新打包为 zip 格式后发送。",
    "unreadable-tnef": "Outlook 把附件打包成了 winmail.dat，但该文件已损坏，无法取出其中的附件。"
                       "请在 Outlook 中把邮件格式改为 HTML 或纯文本后重新发送。",
    "unreadable-member": "压缩包中的“{member}”已损坏，无法解压。请重新打包后发送。",
    "unreadable-file": "文件已损坏或格式无法识别，无法打开。请用 Excel 或 WPS 另存为 .xlsx（报告另存为 .docx）后重新发送。",
    "unsupported-format": "暂不支持 {format} 格式的文件。请将表格另存为 .xlsx、报告另存为 .docx，压缩包使用 zip 格式后重新发送。",
    "conversion-unavailable": "系统暂时无法读取 {format} 格式的文件。请用 Word 或 WPS 打开该文件，"
                              "“另存为”{target} 格式（报告存为 .docx，表格存为 .xlsx）后重新发送。",
    "conversion-failed": "{format} 文件无法转换为 {target} 格式，文件可能已损坏。请用 Word 或 WPS 打开该文件，"
                         "“另存为”.docx 格式（表格存为 .xlsx）后重新发送。",
    "too-many-rows": "工作表“{sheet}”超过 {limit} 行，超出处理上限。请只保留需要填报的内容后重新发送。",
    # The message as a whole.
    "no-attachment": "邮件中没有附件。请将填写好的表格（.xlsx）或报告（.docx，多份报告请打包为 .zip）作为附件发送。",
    "no-form": "邮件附件中没有本次通知要求的表格或报告。请使用通知所附模板填写，"
               "把可编辑的 Excel（.xlsx）或 Word（.docx）文件作为附件发送；PDF 或图片扫描件不能代替。",
    "download-link": "邮件正文中的{names}是网页邮箱的“超大附件”下载链接，系统无法下载，链接也会过期。"
                     "请把文件直接作为附件添加到邮件中发送；文件过大时可压缩为 zip 后再作为附件发送。",
    "too-many-attachments": "邮件附件有 {count} 个，超过 {limit} 个的上限，只处理了前 {limit} 个。请分开发送。",
    "message-too-large": "邮件大小为 {size}，超过 {limit} 的上限，未处理。请压缩附件或分开发送。",
    "late": "{form}的报送截止时间为 {deadline}，我们收到您邮件的时间为 {received}，已逾期。材料照常登记。",
}


@dataclass(frozen=True)
class Finding:
    """One problem found in a submission, located as precisely as it can be."""

    code: str
    severity: str = ERROR
    file: str = ""
    sheet: str = ""
    #: Excel row number as the sender sees it (1-based), or 0 for the whole file.
    row: int = 0
    #: The column's name as the notice gives it, and its letter (A, B ...).
    column: str = ""
    column_letter: str = ""
    value: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def message(self) -> str:
        """Render the Chinese message for this finding."""
        template = MESSAGES.get(self.code, "{code}")
        where = ""
        if self.row:
            where = f"第 {self.row} 行"
            if self.column_letter:
                where += f" {self.column_letter} 列"
            if self.sheet:
                where = f"工作表“{self.sheet}”{where}"
        values = {"where": where, "column": self.column, "value": self.value, "code": self.code,
                  "sheet": self.sheet, **self.params}
        try:
            return template.format(**values)
        except (KeyError, IndexError, ValueError):
            return f"{template}（{self.code}）"

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "file": self.file, "sheet": self.sheet,
                "row": self.row, "column": self.column, "column_letter": self.column_letter,
                "value": self.value, "message": self.message()}


def size_text(size: int) -> str:
    """Format a byte count for people: 850 KB, 12.5 MB."""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def from_problem(code: str, detail: dict[str, Any], *, file: str) -> Finding:
    """Build a finding from a parser's FileProblem code and detail."""
    params = dict(detail)
    limit = params.get("limit")
    if code == "encrypted-archive":
        params["member_note"] = f"（“{params['member']}”）" if params.get("member") else ""
    if isinstance(limit, int) and code in ("member-too-large", "archive-too-large"):
        params["limit_mb"] = round(limit / (1024 * 1024))
    return Finding(code=code, file=file, sheet=str(params.get("sheet", "")), params=params)
