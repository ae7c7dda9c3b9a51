"""Read the paragraphs of a .docx report in document order.

Paragraphs inside tables and text boxes count too, because reporters put their
sections wherever their template did. Each paragraph comes with whether Word
numbers it automatically, since "一、" is then not in its text.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import docx
from docx.oxml.ns import qn

from parsers.problems import FileProblem


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
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as err:
        raise FileProblem("unreadable-file", reason=f"{type(err).__name__}: {err}") from err
    except Exception as err:  # lxml and python-docx raise their own types on corrupt parts
        raise FileProblem("unreadable-file", reason=f"{type(err).__name__}: {err}") from err

    styles = _style_names(document)
    paragraphs: list[Paragraph] = []
    previous = None
    for element in document.element.body.iter(qn("w:p")):
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


def _style_names(document: docx.document.Document) -> dict[str, str]:
    try:
        return {style.style_id: style.name or "" for style in document.styles}
    except (KeyError, ValueError):
        return {}
