"""Turn uploaded files into titled sections that keep the document's heading structure.

Every format goes through a maintained parser (pypdf, python-docx, selectolax, markdown-it-py,
the csv and json modules); nothing here guesses structure with regular expressions. What
cannot be read raises :class:`DocumentError` with a machine-readable ``reason`` that the
document's ``error`` status shows to the person who uploaded it.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import docx
from docx.table import Table as DocxTable
from docx.text.paragraph import Paragraph as DocxParagraph
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PdfReadError, PdfStreamError
from selectolax.lexbor import LexborHTMLParser, LexborNode


class DocumentFormat(enum.StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    HTML = "html"
    MARKDOWN = "markdown"
    TEXT = "text"
    FAQ_CSV = "faq_csv"
    FAQ_JSON = "faq_json"


class DocumentError(Exception):
    """A file that cannot become a document; ``reason`` is a stable code, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path (outermost heading first; empty before any heading)."""

    heading_path: list[str]
    text: str


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    sections: list[Section]
    format: DocumentFormat = DocumentFormat.TEXT

    @property
    def text(self) -> str:
        return "\n\n".join(section.text for section in self.sections)


@dataclass(frozen=True)
class ParseLimits:
    """Bounds that keep a hostile or accidental upload from eating the worker."""

    max_bytes: int = 50 * 1024 * 1024
    max_chars: int = 5_000_000
    max_pdf_pages: int = 2_000
    max_unzipped_bytes: int = 200 * 1024 * 1024
    max_zip_ratio: int = 100
    max_faq_entries: int = 20_000


DEFAULT_LIMITS = ParseLimits()

_EXTENSIONS: dict[str, DocumentFormat] = {
    ".pdf": DocumentFormat.PDF,
    ".docx": DocumentFormat.DOCX,
    ".html": DocumentFormat.HTML,
    ".htm": DocumentFormat.HTML,
    ".xhtml": DocumentFormat.HTML,
    ".md": DocumentFormat.MARKDOWN,
    ".markdown": DocumentFormat.MARKDOWN,
    ".txt": DocumentFormat.TEXT,
    ".text": DocumentFormat.TEXT,
    ".csv": DocumentFormat.FAQ_CSV,
    ".json": DocumentFormat.FAQ_JSON,
}
_TEXT_FORMATS = {
    DocumentFormat.HTML,
    DocumentFormat.MARKDOWN,
    DocumentFormat.TEXT,
    DocumentFormat.FAQ_CSV,
    DocumentFormat.FAQ_JSON,
}
# Signatures of binary files people upload by mistake, to name them in the error.
_MAGIC: list[tuple[bytes, str]] = [
    (b"%PDF-", "PDF"),
    (b"PK\x03\x04", "ZIP"),
    (b"\x89PNG", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"\x1f\x8b", "gzip archive"),
    (b"\xd0\xcf\x11\xe0", "legacy Office (.doc/.xls)"),
    (b"7z\xbc\xaf", "7-Zip archive"),
    (b"Rar!", "RAR archive"),
    (b"\x7fELF", "executable"),
    (b"MZ", "Windows executable"),
]


def parse_document(data: bytes, filename: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> ParsedDocument:
    """Parse ``data`` (the uploaded bytes) named ``filename``, checking the content against the name."""
    if len(data) > limits.max_bytes:
        raise DocumentError(
            "too_large", f"the file is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes"
        )
    if not data.strip():
        raise DocumentError("empty", "the file is empty")
    document_format = detect_format(data, filename)
    fallback_title = _title_from_filename(filename)
    if document_format is DocumentFormat.PDF:
        parsed = _parse_pdf(data, fallback_title, limits)
    elif document_format is DocumentFormat.DOCX:
        parsed = _parse_docx(data, fallback_title, limits)
    else:
        text = _decode_text(data)
        if len(text) > limits.max_chars:
            raise DocumentError(
                "too_large", f"the text has {len(text):,} characters; the limit is {limits.max_chars:,}"
            )
        parsers = {
            DocumentFormat.HTML: _parse_html,
            DocumentFormat.MARKDOWN: _parse_markdown,
            DocumentFormat.TEXT: _parse_text,
            DocumentFormat.FAQ_CSV: _parse_faq_csv,
            DocumentFormat.FAQ_JSON: _parse_faq_json,
        }
        parsed = parsers[document_format](text, fallback_title, limits)
    sections = [s for s in parsed.sections if s.text.strip()]
    if not sections:
        raise DocumentError("no_text", f"no text could be extracted from this {document_format.value} file")
    if sum(len(s.text) for s in sections) > limits.max_chars:
        raise DocumentError("too_large", f"the extracted text is longer than {limits.max_chars:,} characters")
    return ParsedDocument(title=parsed.title or fallback_title, sections=sections, format=document_format)


def detect_format(data: bytes, filename: str) -> DocumentFormat:
    """The format from the content's signature, checked against the file name's extension."""
    extension = PurePath(filename).suffix.lower()
    claimed = _EXTENSIONS.get(extension)
    signature = next((kind for magic, kind in _MAGIC if data.startswith(magic)), None)
    if signature == "PDF":
        if claimed not in (None, DocumentFormat.PDF):
            raise DocumentError("wrong_extension", f"the content is a PDF but the name ends in {extension}")
        return DocumentFormat.PDF
    if signature == "ZIP":
        if not _is_docx(data):
            raise DocumentError("unsupported_type", "the file is a ZIP archive, not a Word (.docx) document")
        if claimed not in (None, DocumentFormat.DOCX):
            raise DocumentError(
                "wrong_extension", f"the content is a Word document but the name ends in {extension}"
            )
        return DocumentFormat.DOCX
    if signature is not None or _looks_binary(data):
        kind = signature or "binary data"
        raise DocumentError("unsupported_type", f"the content is {kind}, not a supported document")
    if claimed in (DocumentFormat.PDF, DocumentFormat.DOCX):
        raise DocumentError(
            "wrong_extension", f"the name ends in {extension} but the content is text, not a {claimed.value}"
        )
    if claimed is not None:
        return claimed
    if not extension or extension in (".htm", ".html"):
        return _sniff_text_format(data)
    raise DocumentError(
        "unsupported_type",
        f"unsupported file type {extension}; use PDF, DOCX, HTML, Markdown, text, FAQ CSV or FAQ JSON",
    )


def _sniff_text_format(data: bytes) -> DocumentFormat:
    head = data.lstrip()[:512].lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<body" in head:
        return DocumentFormat.HTML
    if head.startswith((b"[", b"{")):
        return DocumentFormat.FAQ_JSON
    return DocumentFormat.TEXT


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    control = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13))
    return control > len(sample) // 20


def _decode_text(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Windows-1252 covers the typical non-UTF-8 export from office tools.
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError as error:
            raise DocumentError(
                "unsupported_type", "the file is neither UTF-8 nor Windows-1252 text"
            ) from error
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _title_from_filename(filename: str) -> str:
    stem = PurePath(filename).stem.replace("_", " ").replace("-", " ").strip()
    return " ".join(stem.split()) or "Untitled"


def _clean(text: str) -> str:
    """Collapse runs of spaces inside lines and blank-line noise, keeping line breaks and indents."""
    lines = []
    for line in text.split("\n"):
        words = line.split()
        indent = min(len(line) - len(line.lstrip()), 8) if words else 0  # nesting of lists
        lines.append(" " * indent + " ".join(words))
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join("\n".join(p) for p in paragraphs if p)


class _SectionBuilder:
    """Collects blocks under a heading stack, the shape every structured format shares."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self._headings: list[tuple[int, str]] = []
        self._blocks: list[str] = []
        self.first_heading: str | None = None

    def heading(self, level: int, text: str) -> None:
        text = " ".join(text.split())
        if not text:
            return
        self.flush()
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        self._headings.append((level, text))
        if self.first_heading is None:
            self.first_heading = text

    def block(self, text: str) -> None:
        cleaned = _clean(text)
        if cleaned:
            self._blocks.append(cleaned)

    def flush(self) -> None:
        if self._blocks:
            path = [text for _, text in self._headings]
            self.sections.append(Section(heading_path=path, text="\n\n".join(self._blocks)))
        self._blocks = []

    def finish(self) -> list[Section]:
        self.flush()
        return self.sections


def _table_text(rows: Sequence[Sequence[str]]) -> str:
    """A table as one line per row, cells separated by `` | `` (readable and embeddable)."""
    lines = []
    for row in rows:
        cells = [" ".join(cell.split()) for cell in row]
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


# --- PDF -------------------------------------------------------------------------------------


def _parse_pdf(data: bytes, fallback_title: str, limits: ParseLimits) -> ParsedDocument:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # An owner-password-only PDF opens with the empty user password; others cannot be read.
            try:
                opened = reader.decrypt("")
            except Exception as error:  # pypdf raises several types for unsupported ciphers
                raise DocumentError(
                    "encrypted", "the PDF is encrypted; upload it without a password"
                ) from error
            if not opened:
                raise DocumentError(
                    "encrypted", "the PDF is password-protected; upload it without a password"
                )
        if len(reader.pages) > limits.max_pdf_pages:
            raise DocumentError(
                "too_large", f"the PDF has {len(reader.pages):,} pages; the limit is {limits.max_pdf_pages:,}"
            )
        page_headings = _pdf_outline_by_page(reader)
        builder = _SectionBuilder()
        total = 0
        for number, page in enumerate(reader.pages):
            for level, heading in page_headings.get(number, []):
                builder.heading(level, heading)
            text = page.extract_text() or ""
            total += len(text)
            if total > limits.max_chars:
                raise DocumentError(
                    "too_large", f"the PDF's text is longer than {limits.max_chars:,} characters"
                )
            builder.block(text)
        metadata_title = reader.metadata.title if reader.metadata else None
    except DocumentError:
        raise
    except FileNotDecryptedError as error:
        raise DocumentError(
            "encrypted", "the PDF is password-protected; upload it without a password"
        ) from error
    except (PdfReadError, PdfStreamError) as error:
        raise DocumentError("corrupt", f"the PDF cannot be read: {error}") from error
    except Exception as error:  # a damaged file can trip any part of pypdf; it is still the file's fault
        raise DocumentError("corrupt", f"the PDF cannot be read ({type(error).__name__})") from error
    title = (metadata_title or "").strip() or builder.first_heading or fallback_title
    return ParsedDocument(title=title, sections=builder.finish(), format=DocumentFormat.PDF)


def _pdf_outline_by_page(reader: PdfReader) -> dict[int, list[tuple[int, str]]]:
    """Bookmarks are the only structure a PDF reliably states: page → [(level, title)]."""
    by_page: dict[int, list[tuple[int, str]]] = {}

    def visit(items: list[Any], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                visit(item, level + 1)
                continue
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # noqa: S112 - a broken bookmark is skipped, not fatal
                continue
            if page is not None and page >= 0:
                by_page.setdefault(page, []).append((level, str(item.title)))

    try:
        visit(list(reader.outline), 1)
    except Exception:
        return {}
    return by_page


# --- DOCX ------------------------------------------------------------------------------------


def _parse_docx(data: bytes, fallback_title: str, limits: ParseLimits) -> ParsedDocument:
    _check_zip(data, limits)
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as error:  # python-docx surfaces zip, XML and package errors alike
        raise DocumentError("corrupt", f"the Word document cannot be read: {error}") from error
    builder = _SectionBuilder()
    list_lines: list[str] = []

    def flush_list() -> None:
        if list_lines:
            builder.block("\n".join(list_lines))
            list_lines.clear()

    for item in document.iter_inner_content():
        if isinstance(item, DocxTable):
            flush_list()
            rows = [[cell.text for cell in row.cells] for row in item.rows]
            builder.block(_table_text(_dedupe_merged_cells(rows)))
            continue
        assert isinstance(item, DocxParagraph)
        text = item.text.strip()
        style = (item.style.name if item.style is not None else "") or ""
        level = _docx_heading_level(style)
        if level is not None:
            flush_list()
            builder.heading(level, text)
        elif _docx_is_list_item(item, style):
            if text:
                list_lines.append(f"- {text}")
        else:
            flush_list()
            builder.block(text)
    flush_list()
    core_title = (document.core_properties.title or "").strip()
    title = core_title or builder.first_heading or fallback_title
    return ParsedDocument(title=title, sections=builder.finish(), format=DocumentFormat.DOCX)


def _docx_heading_level(style: str) -> int | None:
    if style == "Title":
        return 0
    if style.startswith("Heading"):
        suffix = style.removeprefix("Heading").strip()
        return int(suffix) if suffix.isdigit() else 1
    return None


def _docx_is_list_item(paragraph: DocxParagraph, style: str) -> bool:
    if style.startswith("List"):
        return True
    properties = paragraph._p.pPr  # numbering properties mark lists made with the toolbar buttons
    return properties is not None and properties.numPr is not None


def _dedupe_merged_cells(rows: list[list[str]]) -> list[list[str]]:
    """python-docx repeats a merged cell's text in every grid cell it spans; keep it once."""
    result = []
    for row in rows:
        kept: list[str] = []
        for cell in row:
            if not kept or cell != kept[-1]:
                kept.append(cell)
        result.append(kept)
    return result


def _check_zip(data: bytes, limits: ParseLimits) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile as error:
        raise DocumentError("corrupt", "the Word document is not a valid ZIP package") from error
    unzipped = sum(info.file_size for info in infos)
    if unzipped > limits.max_unzipped_bytes or unzipped > max(len(data), 1) * limits.max_zip_ratio:
        raise DocumentError(
            "too_large", f"the document unpacks to {unzipped:,} bytes, too much for its {len(data):,} bytes"
        )


# --- HTML ------------------------------------------------------------------------------------

_DROPPED_TAGS = ["script", "style", "nav", "noscript", "template", "svg", "iframe", "object", "head"]
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "pre",
    "figure", "figcaption", "address", "details", "summary", "dl", "dt", "dd", "form", "fieldset",
    "body", "html", "li", "ul", "ol", "table", "hr", "br",
}  # fmt: skip


def _parse_html(text: str, fallback_title: str, limits: ParseLimits) -> ParsedDocument:
    tree = LexborHTMLParser(text)
    title_node = tree.css_first("title")
    page_title = title_node.text(strip=True) if title_node is not None else ""
    root = tree.body or tree.root
    if root is None:
        return ParsedDocument(title=page_title or fallback_title, sections=[], format=DocumentFormat.HTML)
    for node in root.css(",".join(_DROPPED_TAGS)):
        node.decompose()
    walker = _HtmlWalker()
    walker.walk(root)
    sections = walker.finish()
    # The <title> often carries a site suffix ("… | Help Center"); the first h1 is the cleaner name.
    title = walker.builder.first_heading if walker.first_h1 else page_title
    return ParsedDocument(
        title=title or page_title or fallback_title, sections=sections, format=DocumentFormat.HTML
    )


class _HtmlWalker:
    def __init__(self) -> None:
        self.builder = _SectionBuilder()
        self._inline: list[str] = []
        self.first_h1 = False

    def _flush_inline(self) -> None:
        self.builder.block("".join(self._inline))
        self._inline = []

    def finish(self) -> list[Section]:
        self._flush_inline()
        return self.builder.finish()

    def walk(self, node: LexborNode) -> None:
        for child in node.iter(include_text=True):
            tag = child.tag
            if tag == "-text":
                self._inline.append(child.text(deep=False) or "")
            elif tag in _HEADINGS:
                self._flush_inline()
                if tag == "h1" and self.builder.first_heading is None:
                    self.first_h1 = True
                self.builder.heading(_HEADINGS[tag], child.text(separator=" "))
            elif tag in ("ul", "ol"):
                self._flush_inline()
                self.builder.block("\n".join(self._list_lines(child, 0)))
            elif tag == "table":
                self._flush_inline()
                self.builder.block(self._table(child))
            elif tag == "pre":
                self._flush_inline()
                self.builder.block(child.text(deep=True))
            elif tag == "br":
                self._inline.append("\n")
            elif tag in _BLOCK_TAGS:
                self._flush_inline()
                self.walk(child)
                self._flush_inline()
            elif tag in ("-comment", "!doctype"):
                continue
            else:  # inline element: its text joins the running paragraph
                self.walk(child)

    def _list_lines(self, list_node: LexborNode, depth: int) -> list[str]:
        lines: list[str] = []
        ordinal = 0
        for item in list_node.iter():
            if item.tag != "li":
                continue
            ordinal += 1
            own: list[str] = []
            nested: list[str] = []
            for part in item.iter(include_text=True):
                if part.tag in ("ul", "ol"):
                    nested.extend(self._list_lines(part, depth + 1))
                elif part.tag == "-text":
                    own.append(part.text(deep=False) or "")
                else:
                    own.append(part.text(separator=" "))
            marker = f"{ordinal}." if list_node.tag == "ol" else "-"
            text = " ".join("".join(own).split())
            if text:
                lines.append(f"{'  ' * depth}{marker} {text}")
            lines.extend(nested)
        return lines

    @staticmethod
    def _table(table: LexborNode) -> str:
        rows = []
        for row in table.css("tr"):
            rows.append([cell.text(separator=" ") for cell in row.iter() if cell.tag in ("td", "th")])
        return _table_text(rows)


# --- Markdown --------------------------------------------------------------------------------


def _parse_markdown(text: str, fallback_title: str, limits: ParseLimits) -> ParsedDocument:
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    builder = _SectionBuilder()
    lines: list[str] = []  # the block being built (a list or a table spans many tokens)
    list_stack: list[list[int | None]] = []  # per open list: [next ordinal] or [None] for bullets
    table_row: list[str] | None = None
    heading_level: int | None = None
    first_h1: str | None = None

    def end_block() -> None:
        if lines:
            builder.block("\n".join(lines))
            lines.clear()

    for token in tokens:
        kind = token.type
        if kind == "heading_open":
            end_block()
            heading_level = int(token.tag[1])
        elif kind == "heading_close":
            heading_level = None
        elif kind == "bullet_list_open":
            list_stack.append([None])
        elif kind == "ordered_list_open":
            start = token.attrGet("start")
            list_stack.append([int(start) if start is not None else 1])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_stack.pop()
            if not list_stack:
                end_block()
        elif kind == "tr_open":
            table_row = []
        elif kind == "tr_close":
            if table_row is not None:
                lines.append(_table_text([table_row]))
            table_row = None
        elif kind == "table_close":
            end_block()
        elif kind in ("fence", "code_block"):
            end_block()
            builder.block(token.content)
        elif kind == "inline":
            content = _markdown_inline_text(token.children or [])
            if heading_level is not None:
                builder.heading(heading_level, content)
                if heading_level == 1 and first_h1 is None:
                    first_h1 = " ".join(content.split())
            elif table_row is not None:
                table_row.append(content)
            elif list_stack:
                lines.append(_list_marker(list_stack, content))
            else:
                builder.block(content)
        elif kind == "html_block":
            end_block()
            builder.block(_parse_html(token.content, "", limits).text)
    end_block()
    return ParsedDocument(
        title=first_h1 or fallback_title, sections=builder.finish(), format=DocumentFormat.MARKDOWN
    )


def _list_marker(list_stack: list[list[int | None]], content: str) -> str:
    current = list_stack[-1]
    indent = "  " * (len(list_stack) - 1)
    if current[0] is None:
        return f"{indent}- {content}"
    marker = f"{current[0]}."
    current[0] += 1
    return f"{indent}{marker} {content}"


def _markdown_inline_text(children: list[Token]) -> str:
    parts = []
    for child in children:
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "image":
            parts.append(_markdown_inline_text(child.children or []))
    return "".join(parts)


# --- Plain text ------------------------------------------------------------------------------


def _parse_text(text: str, fallback_title: str, limits: ParseLimits) -> ParsedDocument:
    """Headings are upper-case lines (optionally underlined with ``===``/``---``); paragraphs are
    separated by blank lines."""
    lines = text.split("\n")
    builder = _SectionBuilder()
    paragraph: list[str] = []
    title: str | None = None

    def end_paragraph() -> None:
        if paragraph:
            builder.block("\n".join(paragraph))
            paragraph.clear()

    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        underline = _underline_char(following)
        if line.strip() and (underline or _is_caps_heading(line, lines, index)):
            end_paragraph()
            level = 1 if underline == "=" else 2
            heading = line.strip()
            if title is None and level == 1:
                title = heading
            builder.heading(level, heading)
            index += 2 if underline else 1
            continue
        if line.strip():
            paragraph.append(line)
        else:
            end_paragraph()
        index += 1
    end_paragraph()
    return ParsedDocument(
        title=title or builder.first_heading or fallback_title,
        sections=builder.finish(),
        format=DocumentFormat.TEXT,
    )


def _underline_char(line: str) -> str | None:
    if len(line) >= 3 and len(set(line)) == 1 and line[0] in "=-~":
        return "=" if line[0] == "=" else "-"
    return None


def _is_caps_heading(line: str, lines: list[str], index: int) -> bool:
    """An upper-case line of a few words standing alone (blank line before it, or first line)."""
    stripped = line.strip()
    letters = [c for c in stripped if c.isalpha()]
    if len(letters) < 3 or len(stripped) > 80 or stripped[0] in "-*•" or line[:1].isspace():
        return False
    if not all(c.isupper() for c in letters):
        return False
    return index == 0 or not lines[index - 1].strip()


# --- FAQ files -------------------------------------------------------------------------------


def _faq_sections(pairs: Iterator[tuple[str, str]], limits: ParseLimits) -> list[Section]:
    sections = []
    for question, answer in pairs:
        question, answer = " ".join(question.split()), answer.strip()
        if question and answer:
            sections.append(Section(heading_path=[question], text=_clean(answer)))
            if len(sections) > limits.max_faq_entries:
                raise DocumentError("too_large", f"the FAQ has more than {limits.max_faq_entries:,} entries")
    if not sections:
        raise DocumentError("no_text", "the FAQ has no entry with both a question and an answer")
    return sections


def _parse_faq_csv(text: str, fallback_title: str, limits: ParseLimits) -> ParsedDocument:
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except StopIteration as error:
        raise DocumentError("empty", "the CSV file has no rows") from error
    except csv.Error as error:
        raise DocumentError("corrupt", f"the CSV file cannot be read: {error}") from error
    columns = [name.strip().lower() for name in header]
    missing = [name for name in ("question", "answer") if name not in columns]
    if missing:
        found = ", ".join(repr(c) for c in columns if c) or "none"
        raise DocumentError(
            "missing_columns",
            f"a FAQ CSV needs 'question' and 'answer' columns; missing {', '.join(missing)} (found {found})",
        )
    q_index, a_index = columns.index("question"), columns.index("answer")

    def pairs() -> Iterator[tuple[str, str]]:
        try:
            for row in reader:
                if len(row) > max(q_index, a_index):
                    yield row[q_index], row[a_index]
        except csv.Error as error:
            raise DocumentError("corrupt", f"the CSV file cannot be read: {error}") from error

    return ParsedDocument(
        title=fallback_title, sections=_faq_sections(pairs(), limits), format=DocumentFormat.FAQ_CSV
    )


def _parse_faq_json(text: str, fallback_title: str, limits: ParseLimits) -> ParsedDocument:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise DocumentError("corrupt", f"the JSON file cannot be read: {error}") from error
    if not isinstance(payload, list):
        raise DocumentError("invalid_faq", 'a FAQ JSON file must be a list of {"question", "answer"} objects')

    def pairs() -> Iterator[tuple[str, str]]:
        for position, entry in enumerate(payload):
            keys = {str(k).lower(): v for k, v in entry.items()} if isinstance(entry, dict) else {}
            question, answer = keys.get("question"), keys.get("answer")
            if not isinstance(question, str) or not isinstance(answer, str):
                raise DocumentError(
                    "invalid_faq", f'FAQ entry {position} needs string "question" and "answer" fields'
                )
            yield question, answer

    return ParsedDocument(
        title=fallback_title, sections=_faq_sections(pairs(), limits), format=DocumentFormat.FAQ_JSON
    )
