"""Real documents of every supported format, built in the test run with the formats' own libraries."""

from __future__ import annotations

import io

import docx
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject


def pdf_bytes(
    pages: list[list[str]], *, outline: list[tuple[str, int]] = (), user_password: str | None = None
) -> bytes:  # type: ignore[assignment]
    """A PDF whose pages show ``pages[i]`` as lines of Helvetica text, with optional bookmarks."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_reference = writer._add_object(font)
    for lines in pages:
        page = writer.add_blank_page(width=612, height=792)
        commands = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            commands.append(f"({escaped}) Tj T*")
        commands.append("ET")
        stream = DecodedStreamObject()
        stream.set_data("\n".join(commands).encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_reference})}
        )
    for title, page_number in outline:
        writer.add_outline_item(title=title, page_number=page_number)
    if user_password is not None:
        writer.encrypt(
            user_password=user_password, owner_password="owner-" + user_password, algorithm="AES-128"
        )
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def docx_bytes() -> bytes:
    """A Word document with a title, headings, a bulleted list and a table."""
    document = docx.Document()
    document.core_properties.title = "Store Guide"
    document.add_heading("Store Guide", level=0)
    document.add_paragraph("Welcome to our stores.")
    document.add_heading("Opening hours", level=1)
    document.add_paragraph("Stores open every day.")
    document.add_paragraph("Weekdays from 9 a.m.", style="List Bullet")
    document.add_paragraph("Sundays from 11 a.m.", style="List Bullet")
    document.add_heading("Pickup fees", level=2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Country"
    table.cell(0, 1).text = "Fee"
    table.cell(1, 0).text = "Brazil"
    table.cell(1, 1).text = "R$ 10"
    document.add_heading("Returns", level=1)
    document.add_paragraph("Bring the receipt.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
