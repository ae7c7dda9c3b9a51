"""Every finding's Chinese message: it renders, quotes its values and says what to do."""

from __future__ import annotations

import pytest

from rules.findings import INFO, MESSAGES, Finding, from_problem

PARAMS = {
    "hint": "“SQ”加 10 位数字", "choices": "正常、部分使用、停止", "other_column": "合同金额", "other_value": "20",
    "section": "三、存在问题", "guidance": "包括但不限于", "member": "附件2-甲.docx", "limit": 200, "limit_mb": 50,
    "count": 300, "ratio": 9000, "format": ".wps", "target": ".docx", "sheet": "附件1", "names": "“汇总表.xlsx”",
    "size": "80.5 MB", "form": "附件1《上云上平台实施项目情况汇总表（服务商填写）》", "deadline": "2020年9月18日 24:00",
    "received": "2020年9月19日 10:00", "member_note": "（“a.docx”）", "first_row": 7,
}

#: Words that tell the sender what to do next.
FIX_WORDS = ("请", "材料照常登记")


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_finding_message_renders_with_fix(code: str) -> None:
    finding = Finding(code=code, file="表.xlsx", sheet="附件1", row=8, column="申领年份", column_letter="B",
                      value="2017", params=PARAMS)

    message = finding.message()

    assert "{" not in message
    assert f"（{code}）" not in message
    assert any(word in message for word in FIX_WORDS)


@pytest.mark.parametrize("code", [c for c in sorted(MESSAGES) if "{where}" in MESSAGES[c]])
def test_cell_finding_names_sheet_row_column_value(code: str) -> None:
    message = Finding(code=code, sheet="附件1", row=8, column="申领年份", column_letter="B", value="2017",
                      params=PARAMS).message()

    assert "工作表“附件1”第 8 行 B 列" in message
    assert "申领年份" in message


def test_from_problem_converts_limit_to_megabytes() -> None:
    finding = from_problem("member-too-large", {"member": "a.docx", "size": None, "limit": 50 * 1024 * 1024},
                           file="包.zip/a.docx")

    assert "50 MB" in finding.message()
    assert "a.docx" in finding.message()


def test_late_finding_is_information() -> None:
    assert Finding(code="late", severity=INFO, params=PARAMS).severity == INFO
