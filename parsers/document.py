"""Read the paragraphs of a .docx report in document order.

Paragraphs inside tables and text boxes count too, because reporters put their
sections wherever their template did. Each paragraph comes with whether Word
numbers it automatically, since "一、" is then not in its text.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import logging
from typing import Any

import docx
from docx.oxml.ns import qn
from docx.oxml.parser import parse_xml

from parsers.problems import FileProblem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paragraph:
    """A non-empty paragraph's text, its style name and whether it is auto-numbered."""

    text: str
    style: str
    numbered: bool


def read_docx(data: bytes) -> list[Paragraph]:
    """Return the non-empty paragraphs of the document in `data`.

    Raises FileProblem("unreadable-file") when the file cannot be opened.
    """
    try:
        document = docx.Document(io.BytesIO(data))
        body, styles = document.element.body, _style_names(document)
    except KeyError as err:
        # python-docx 1.2 follows every relationship when it opens a file and raises
        # KeyError on an internal target that is not in the package, as WPS writes
        # for links to bookmarks ("#_Toc1"). The text is still in document.xml.
        log.info("docx relationships broken (%s); reading document.xml directly", err)
        body, styles = _raw_body(data)
    except Exception as err:  # zipfile, lxml and python-docx raise their own types on corrupt parts
        raise FileProblem("unreadable-file", reason=f"{type(err).__name__}: {err}") from err

    if body is None:
        raise FileProblem("unreadable-file", reason="word/document.xml has no body")

    paragraphs: list[Paragraph] = []
    previous = None
    for element in body.iter(qn("w:p")):
        text = "".join(node.text or "" for node in element.iter(qn("w:t"))).strip()
        # A text box is stored twice (DrawingML and its VML fallback); keep one.
        if not text or text == previous:
            continue
        previous = text
        style_id = element.find(f"{qn('w:pPr')}/{qn('w:pStyle')}")
        style = styles.get(style_id.get(qn("w:val")), "") if style_id is not None else ""
        numbered = element.find(f"{qn('w:pPr')}/{qn('w:numPr')}") is not None
        paragraphs.append(Paragraph(text=text, style=style, numbered=numbered))
    return paragraphs


def _raw_body(data: bytes) -> tuple[Any, dict[str, str]]:
    """Parse word/document.xml and word/styles.xml without the package's relationships."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            root = parse_xml(archive.read("word/document.xml"))
            names = set(archive.namelist())
            styles_root = parse_xml(archive.read("word/styles.xml")) if "word/styles.xml" in names else None
    except Exception as err:  # a missing part, broken zip or malformed XML
        raise FileProblem("unreadable-file", reason=f"{type(err).__name__}: {err}") from err

    body = root.find(qn("w:body"))
    if body is None:
        raise FileProblem("unreadable-file", reason="word/document.xml has no body")
    styles: dict[str, str] = {}
    if styles_root is not None:
        for style in styles_root.iter(qn("w:style")):
            name = style.find(qn("w:name"))
            styles[style.get(qn("w:styleId"), "")] = name.get(qn("w:val"), "") if name is not None else ""
    return body, styles


def _style_names(document: docx.document.Document) -> dict[str, str]:
    try:
        return {style.style_id: style.name or "" for style in document.styles}
    except (KeyError, ValueError):
        return {}
