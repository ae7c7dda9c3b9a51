"""Find large-attachment download links that webmail puts in the body instead of files.

QQ Mail, Tencent Exmail and NetEase mail send a file over their size limit as a link
to their own download page, which expires and which a robot cannot open. The link
is recognised by its path or by the banner text the service writes beside it.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

#: URL fragments of the services' download pages.
_LINK_PATTERNS = (
    re.compile(r"https?://[^\s\"'<>]*ftnExs_download[^\s\"'<>]*", re.IGNORECASE),   # QQ Mail, Exmail
    re.compile(r"https?://[^\s\"'<>]*large-?attachment[^\s\"'<>]*", re.IGNORECASE),  # NetEase 163/126
    re.compile(r"https?://[^\s\"'<>]*/ftn/[^\s\"'<>]*", re.IGNORECASE),
)
#: Banner text the services write above such links.
_BANNERS = ("超大附件", "云附件", "大附件", "文件中转站")
_ANY_LINK = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)
_FILE_NAME = re.compile(r"([^\s<>\"'/:：，,]+?\.(?:xlsx|xlsm|xls|docx|doc|wps|et|zip|rar|7z))", re.IGNORECASE)


@dataclass(frozen=True)
class DownloadLink:
    """A link to a file that should have been attached, and the file name shown beside it."""

    url: str
    names: tuple[str, ...]


def find_download_links(text: str, html_body: str) -> DownloadLink | None:
    """Return the large-attachment links of a message body, or None when it has none."""
    plain = text + "\n" + html.unescape(re.sub(r"<[^>]+>", " ", html_body))
    urls = [m.group(0) for pattern in _LINK_PATTERNS for m in pattern.finditer(plain + " " + html_body)]
    if not urls and any(banner in plain for banner in _BANNERS):
        urls = _ANY_LINK.findall(plain + " " + html_body)
    if not urls:
        return None

    names = tuple(dict.fromkeys(m.group(1) for m in _FILE_NAME.finditer(plain)))
    return DownloadLink(url=html.unescape(urls[0]), names=names)
