"""Write the demo Maildir (demo/maildir) that shows what intake does with typical mail.

Run from anywhere: python demo/make_demo.py. Every message has a fixed Message-ID, Date,
Received time and MIME boundary, so reruns write the same file names and bytes. Files in
maildir/new that this script did not write are removed.

Messages, all for notice 粤工信互联网函〔2020〕858号 (Form 1 due 2020-09-18, Form 3 and
Form 2 reports due 2020-09-21):

1. valid Form 1 with 3 data rows                           -> accepted
2. Form 1 with bad cells in Excel rows 7, 8 and 9          -> rejected
3. 佛山: Form 3 (4 rows) + zip (GBK names) of 2 reports    -> accepted
4. 江门: Form 3 (3 rows) + zip of 2 reports, one lacking
   "三、存在问题"                                           -> partial
5. no attachment, body "请查收"                             -> rejected
6. out-of-office auto-reply                                -> ignored
7. valid Form 1 received 2020-09-19                        -> accepted, late
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.builders import (  # noqa: E402  (the repository root must be on sys.path first)
    XLSX_TYPE,
    ZIP_TYPE,
    Row,
    auto_reply,
    form1_row,
    form1_workbook,
    form2_report,
    form3_row,
    form3_workbook,
    mail,
    zip_archive,
)

MAILDIR = REPO_ROOT / "demo" / "maildir"
DELIVERY_HOST = "mx.gdei.gov.cn"

OUTLOOK = {"X-Mailer": "Microsoft Outlook 16.0"}
FOXMAIL = {"X-Mailer": "Foxmail 7.2.19.158[cn]"}


@dataclass(frozen=True)
class DemoMessage:
    """One message for the Maildir and the outcome intake should reach for it."""

    received: str
    message_id: str
    expected: str
    raw: bytes


def _provider_row(n: int, provider: str, enterprise: dict[str, object]) -> Row:
    """Return a Form 1 row of provider with the enterprise's columns filled in."""
    return form1_row(n, 供应商名称=provider, **enterprise)


def valid_form1() -> DemoMessage:
    """Build message 1: a service provider's Form 1 with 3 valid data rows."""
    provider = "广东星河数联科技有限公司"
    rows = [
        _provider_row(2, provider, {
            "申领年份": 2019, "申请编号": "SQ1904227150", "工业企业名称": "佛山市南海区利丰陶瓷有限公司",
            "工业企业地址": "佛山市南海区西樵镇太平工业区3号", "工业企业联系方式": "13690412275",
            "应用服务目录": "设备联网上云", "合同金额": 18, "服务券金额": 15}),
        _provider_row(3, provider, {
            "申领年份": 2018, "申请编号": "SQ1809186631", "工业企业名称": "东莞市祥和包装制品有限公司",
            "工业企业地址": "东莞市寮步镇香市路101号", "工业企业联系方式": "0769-83156620",
            "代理商名称": "东莞市联拓信息服务有限公司", "应用服务目录": "云MES", "合同金额": 32.5,
            "服务券金额": 20}),
        _provider_row(4, provider, {
            "申领年份": 2019, "申请编号": "SQ1905093318", "工业企业名称": "中山市名扬五金电器有限公司",
            "工业企业地址": "中山市小榄镇工业大道南15号", "工业企业联系方式": "13802634480",
            "应用服务目录": "云上财务", "合同金额": 6.5, "服务券金额": 6.5, "实施不成功的原因": "无"}),
    ]
    workbook = form1_workbook(rows, filler="周文涛", phone="13760285513")
    message_id = "<202009101012312718460@xinghe-sl.example.com>"
    raw = mail(
        sender="周文涛 <zhouwt@xinghe-sl.example.com>",
        subject="报送上云上平台实施项目情况汇总表（广东星河数联科技有限公司）",
        body="省工信厅互联网处：\n\n    根据粤工信互联网函〔2020〕858号要求，现报送我司《上云上平台实施项目情况汇总表"
             "（服务商填写）》，请查收。\n\n    联系人：周文涛，电话：13760285513\n\n广东星河数联科技有限公司",
        attachments=[("附件1：上云上平台实施项目情况汇总表（服务商填写）-星河数联.xlsx", workbook, XLSX_TYPE)],
        message_id=message_id, date="Thu, 10 Sep 2020 10:12:31 +0800",
        received="Thu, 10 Sep 2020 10:12:36 +0800", charset="gb2312", filename_style="rfc2047",
        headers=FOXMAIL)
    return DemoMessage("Thu, 10 Sep 2020 10:12:36 +0800", message_id, "accepted, form1_rows=3", raw)


def invalid_form1() -> DemoMessage:
    """Build message 2: Form 1 with a bad cell in each of Excel rows 7, 8 and 9."""
    provider = "广东锐拓网络科技有限公司"
    rows = [
        # Excel row 7: 申领年份 2017 is outside 2018/2019.
        _provider_row(2, provider, {
            "申领年份": 2017, "申请编号": "SQ1711084402", "工业企业名称": "广州市白云区顺景皮具有限公司",
            "工业企业地址": "广州市白云区太和镇大源北路22号", "工业企业联系方式": "13533809162",
            "应用服务目录": "云CRM", "合同金额": 10, "服务券金额": 10}),
        # Excel row 8: 使用情况 "良好" is not one of 正常/部分使用/停止.
        _provider_row(3, provider, {
            "申领年份": 2019, "申请编号": "SQ1903254187", "工业企业名称": "肇庆市高要区金利五金制品有限公司",
            "工业企业地址": "肇庆市高要区金利镇工业园8号", "工业企业联系方式": "0758-8391206",
            "应用服务目录": "能耗监测管理", "合同金额": 15, "服务券金额": 12, "使用情况": "良好"}),
        # Excel row 9: 服务券金额 30 exceeds 合同金额 20.
        _provider_row(4, provider, {
            "申领年份": 2018, "申请编号": "SQ1810172295", "工业企业名称": "清远市佳美陶瓷有限公司",
            "工业企业地址": "清远市清城区源潭镇陶瓷城5号", "工业企业联系方式": "13631107748",
            "应用服务目录": "智能排单调度", "合同金额": 20, "服务券金额": 30}),
    ]
    workbook = form1_workbook(rows, filler="许嘉欣", phone="020-87652213")
    message_id = "<000a01d68819$5b2e4c70$118ae550$@ruituo.example.com>"
    raw = mail(
        sender="许嘉欣 <xujx@ruituo.example.com>",
        subject="上云上平台实施项目情况汇总表（锐拓网络）",
        body="您好，附件是我司填写的上云上平台实施项目情况汇总表，请查收。\n\n许嘉欣\n广东锐拓网络科技有限公司",
        attachments=[("附件1-上云上平台实施项目情况汇总表（锐拓网络）.xlsx", workbook, XLSX_TYPE)],
        message_id=message_id, date="Fri, 11 Sep 2020 16:40:05 +0800",
        received="Fri, 11 Sep 2020 16:40:09 +0800", headers=OUTLOOK)
    expected = "rejected: row 7 申领年份 2017, row 8 使用情况 良好, row 9 服务券金额 30 > 合同金额 20"
    return DemoMessage("Fri, 11 Sep 2020 16:40:09 +0800", message_id, expected, raw)


def _city_row(n: int, fields: dict[str, object]) -> Row:
    """Return a Form 3 row with the given columns filled in."""
    return form3_row(n, **fields)


def foshan_city() -> DemoMessage:
    """Build message 3: 佛山's Form 3 with 4 rows and a GBK-named zip of 2 valid reports."""
    rows = [
        _city_row(2, {"申领年份": 2018, "申请编号": "SQ1806124408", "工业企业名称": "佛山市顺德区美佳电器有限公司",
                      "供应商名称": "广东星河数联科技有限公司", "检查结果": "未检查", "备注": "未被抽到"}),
        _city_row(3, {"申领年份": 2019, "申请编号": "SQ1902270513", "工业企业名称": "佛山市三水区宏图纺织有限公司",
                      "供应商名称": "广东云溪软件有限公司", "检查结果": "通过", "备注": "系统运行正常"}),
        _city_row(4, {"申领年份": 2019, "申请编号": "SQ1907158826", "工业企业名称": "佛山市高明区新亚化工有限公司",
                      "供应商名称": "广州博创信息技术有限公司", "代理商名称": "佛山市智远科技服务有限公司",
                      "检查结果": "不通过", "备注": "企业已停用系统"}),
        _city_row(5, {"申领年份": 2018, "申请编号": "SQ1811279904", "工业企业名称": "佛山市南海区华宇铝业有限公司",
                      "供应商名称": "广东锐拓网络科技有限公司", "检查结果": "通过", "备注": "已实地检查"}),
    ]
    workbook = form3_workbook(rows, filler="黄志明", phone="0757-83381200")
    archive = zip_archive({
        "附件2-佛山市顺德区美佳电器标杆示范项目建设情况报告.docx":
            form2_report("佛山市顺德区美佳电器有限公司", project="家电行业工业互联网平台"),
        "附件2-佛山市南海区华宇铝业标杆示范项目建设情况报告.docx":
            form2_report("佛山市南海区华宇铝业有限公司", project="铝型材智能工厂"),
    }, names="gbk")
    message_id = "<3b2c01d68cc4$7e1a9f30$7a4fdd90$@foshan.example.org>"
    raw = mail(
        sender="佛山市工业和信息化局 <gxj@foshan.example.org>",
        subject="佛山市工业和信息化局报送上云上平台项目情况检查表及标杆示范项目建设情况报告",
        body="省工业和信息化厅：\n\n    现报送我市《上云上平台项目情况检查表（工信部门填写）》及工业互联网标杆示范项目"
             "建设情况报告（压缩包），请查收。\n\n联系人：黄志明，0757-83381200\n佛山市工业和信息化局",
        attachments=[
            ("附件3：上云上平台项目情况检查表（佛山市）.xlsx", workbook, XLSX_TYPE),
            ("佛山市工业互联网标杆示范项目建设情况报告.zip", archive, ZIP_TYPE),
        ],
        message_id=message_id, date="Thu, 17 Sep 2020 15:20:11 +0800",
        received="Thu, 17 Sep 2020 15:20:14 +0800", charset="gb2312", filename_style="rfc2047",
        headers=OUTLOOK)
    return DemoMessage("Thu, 17 Sep 2020 15:20:14 +0800", message_id,
                       "accepted, form3_rows=4, form2_reports=2", raw)


def jiangmen_city() -> DemoMessage:
    """Build message 4: 江门's Form 3 and a zip in which one report lacks 三、存在问题."""
    rows = [
        _city_row(2, {"申领年份": 2019, "申请编号": "SQ1904081137", "工业企业名称": "江门市蓬江区鸿图机电有限公司",
                      "供应商名称": "广东星河数联科技有限公司", "检查结果": "通过", "备注": "现场核查通过"}),
        _city_row(3, {"申领年份": 2018, "申请编号": "SQ1812205570", "工业企业名称": "江门市新会区锦丰纸品有限公司",
                      "供应商名称": "深圳市智汇云科技有限公司", "检查结果": "未检查", "备注": "未被抽到"}),
        _city_row(4, {"申领年份": 2019, "申请编号": "SQ1908302261", "工业企业名称": "鹤山市雅图卫浴有限公司",
                      "供应商名称": "广东云溪软件有限公司", "检查结果": "未检查", "备注": "未被抽到"}),
    ]
    workbook = form3_workbook(rows, filler="梁国栋", phone="0750-3502816")
    archive = zip_archive({
        "附件2-江门市新会区锦丰纸品标杆示范项目建设情况报告.docx":
            form2_report("江门市新会区锦丰纸品有限公司", project="纸品包装智能工厂"),
        "附件2-江门市蓬江区鸿图机电标杆示范项目建设情况报告.docx":
            form2_report("江门市蓬江区鸿图机电有限公司", project="机电行业工业互联网平台",
                         omit=("三、存在问题",)),
    }, names="utf-8")
    message_id = "<4f6d01d68d5e$1c2b3a40$54816cc0$@jiangmen.example.org>"
    raw = mail(
        sender="江门市工业和信息化局 <gxj@jiangmen.example.org>",
        subject="江门市报送上云上平台项目情况检查表和标杆示范项目建设情况报告",
        body="省工业和信息化厅：\n\n    附件为我市上云上平台项目情况检查表和标杆示范项目建设情况报告，请查收。\n\n"
             "江门市工业和信息化局 梁国栋",
        attachments=[
            ("附件3：上云上平台项目情况检查表（江门市）.xlsx", workbook, XLSX_TYPE),
            ("江门市标杆示范项目建设情况报告.zip", archive, ZIP_TYPE),
        ],
        message_id=message_id, date="Fri, 18 Sep 2020 11:05:47 +0800",
        received="Fri, 18 Sep 2020 11:05:52 +0800", headers=OUTLOOK)
    expected = ("partial, form3_rows=3, form2_reports=1; returns "
                "附件2-江门市蓬江区鸿图机电标杆示范项目建设情况报告.docx (lacks 三、存在问题)")
    return DemoMessage("Fri, 18 Sep 2020 11:05:52 +0800", message_id, expected, raw)


def no_attachment() -> DemoMessage:
    """Build message 5: a mail whose body is only 请查收, with no attachment."""
    message_id = "<202009140948201132587@kaiyuan-yun.example.net>"
    raw = mail(
        sender="罗志强 <luozq@kaiyuan-yun.example.net>",
        subject="上云上平台实施项目情况汇总表",
        body="请查收",
        message_id=message_id, date="Mon, 14 Sep 2020 09:48:20 +0800",
        received="Mon, 14 Sep 2020 09:48:25 +0800", charset="gb2312", headers=FOXMAIL)
    return DemoMessage("Mon, 14 Sep 2020 09:48:25 +0800", message_id, "rejected: no attachment", raw)


def out_of_office() -> DemoMessage:
    """Build message 6: an out-of-office auto-reply to one of intake's replies."""
    message_id = "<c95301d68bb8$6dfb5792$efcc04bd$@xinghe-sl.example.com>"
    raw = auto_reply(
        sender="钟慧敏 <zhonghm@xinghe-sl.example.com>", message_id=message_id,
        in_reply_to="<reply-20200915-0007@gdei.gov.cn>", date="Wed, 16 Sep 2020 09:02:42 +0800",
        received="Wed, 16 Sep 2020 09:02:44 +0800")
    return DemoMessage("Wed, 16 Sep 2020 09:02:44 +0800", message_id, "ignored: auto-reply", raw)


def late_form1() -> DemoMessage:
    """Build message 7: a valid Form 1 received on 2020-09-19, after the 09-18 deadline."""
    provider = "广东云溪软件有限公司"
    rows = [
        _provider_row(2, provider, {
            "申领年份": 2019, "申请编号": "SQ1906183342", "工业企业名称": "湛江市霞山区海丰水产加工有限公司",
            "工业企业地址": "湛江市霞山区海滨大道南66号", "工业企业联系方式": "13929718840",
            "应用服务目录": "云ERP", "合同金额": 12, "服务券金额": 10}),
        _provider_row(3, provider, {
            "申领年份": 2018, "申请编号": "SQ1810292471", "工业企业名称": "茂名市电白区华南石化设备有限公司",
            "工业企业地址": "茂名市电白区水东镇工业园12号", "工业企业联系方式": "0668-5526031",
            "应用服务目录": "设备联网上云", "合同金额": 25, "服务券金额": 20, "使用情况": "部分使用",
            "实施不成功的原因": "部分设备未完成改造"}),
    ]
    workbook = form1_workbook(rows, filler="冯嘉怡", phone="13826471190")
    message_id = "<202009190958402251873@yunxi-soft.example.com>"
    raw = mail(
        sender="冯嘉怡 <fengjy@yunxi-soft.example.com>",
        subject="（补报）上云上平台实施项目情况汇总表-广东云溪软件有限公司",
        body="您好，因人员出差，我司汇总表延迟报送，敬请谅解。附件请查收。\n\n冯嘉怡 13826471190",
        attachments=[("上云上平台实施项目情况汇总表-云溪软件.xlsx", workbook, XLSX_TYPE)],
        message_id=message_id, date="Sat, 19 Sep 2020 09:58:40 +0800",
        received="Sat, 19 Sep 2020 10:00:03 +0800", headers=FOXMAIL)
    return DemoMessage("Sat, 19 Sep 2020 10:00:03 +0800", message_id, "accepted, late, form1_rows=2", raw)


def maildir_name(index: int, message: DemoMessage) -> str:
    """Return a Maildir file name (time.M<usec>P<pid>.host) fixed by the delivery time."""
    seconds = int(parsedate_to_datetime(message.received).timestamp())
    return f"{seconds}.M{100000 + index}P{3000 + index}.{DELIVERY_HOST}"


def build_messages() -> list[DemoMessage]:
    """Return the demo messages in the order of the module docstring."""
    return [valid_form1(), invalid_form1(), foshan_city(), jiangmen_city(), no_attachment(),
            out_of_office(), late_form1()]


def write_maildir(messages: list[DemoMessage]) -> list[tuple[str, DemoMessage]]:
    """Write messages into MAILDIR/new and return (file name, message) pairs.

    cur/ and tmp/ stay empty except for .gitkeep, so a version-control checkout keeps them.
    """
    for folder in ("cur", "new", "tmp"):
        (MAILDIR / folder).mkdir(parents=True, exist_ok=True)
    (MAILDIR / "cur" / ".gitkeep").write_bytes(b"")
    (MAILDIR / "tmp" / ".gitkeep").write_bytes(b"")

    written = [(maildir_name(index, message), message) for index, message in enumerate(messages, start=1)]
    names = {name for name, _ in written}
    for stale in (MAILDIR / "new").iterdir():
        if stale.name not in names:
            stale.unlink()

    for name, message in written:
        (MAILDIR / "new" / name).write_bytes(message.raw)
    return written


def main() -> None:
    """Write the demo Maildir and print each file with its expected outcome."""
    for name, message in write_maildir(build_messages()):
        print(f"new/{name}  {message.message_id}  -> {message.expected}")


if __name__ == "__main__":
    main()
