"""Parsers keep headings, lists and tables, and refuse bad files with a reason a person can act on."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.wacanda.documents import docx_bytes, pdf_bytes
from wacanda.knowledge.parsing import DocumentError, DocumentFormat, ParseLimits, parse_document

EVAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "eval"


def _reason(data: bytes, name: str, limits: ParseLimits | None = None) -> str:
    with pytest.raises(DocumentError) as caught:
        parse_document(data, name, limits=limits or ParseLimits())
    assert caught.value.message
    return caught.value.reason


def test_markdown_keeps_heading_path_lists_and_tables() -> None:
    text = """# Returns

Intro text.

## Window

- 14 days to return
- 30 days to exchange

### Fees

| Country | Fee |
|---|---|
| US | $35 |
"""
    parsed = parse_document(text.encode(), "returns.md")
    assert parsed.format is DocumentFormat.MARKDOWN
    assert parsed.title == "Returns"
    assert [(s.heading_path, s.text) for s in parsed.sections] == [
        (["Returns"], "Intro text."),
        (["Returns", "Window"], "- 14 days to return\n- 30 days to exchange"),
        (["Returns", "Window", "Fees"], "Country | Fee\nUS | $35"),
    ]


def test_html_drops_script_style_and_nav_but_keeps_structure() -> None:
    html = """<!doctype html><html><head><title>Help | Site</title><style>p{color:red}</style></head>
    <body><nav><a href="/">Home</a> menu</nav>
    <h1>Shipping</h1><p>We ship <b>fast</b>.</p><script>alert("steal")</script>
    <h2>Carriers</h2><ol><li>FedEx</li><li>UPS<ul><li>Ground</li></ul></li></ol>
    <table><tr><th>Region</th><th>Days</th></tr><tr><td>US</td><td>2</td></tr></table>
    </body></html>"""
    parsed = parse_document(html.encode(), "shipping.html")
    assert parsed.title == "Shipping"
    assert [(s.heading_path, s.text) for s in parsed.sections] == [
        (["Shipping"], "We ship fast."),
        (["Shipping", "Carriers"], "1. FedEx\n2. UPS\n  - Ground\n\nRegion | Days\nUS | 2"),
    ]
    assert "alert" not in parsed.text and "menu" not in parsed.text and "color" not in parsed.text


def test_plain_text_headings_are_upper_case_lines() -> None:
    text = (
        "LUMEN PROTECT\n=============\n\nIntro line one\nline two.\n\n\n"
        "CLAIMS\n------\n- File in the app.\n\nNOTES\nKeep receipts.\n"
    )
    parsed = parse_document(text.encode(), "insurance.txt")
    assert parsed.title == "LUMEN PROTECT"
    assert [(s.heading_path, s.text) for s in parsed.sections] == [
        (["LUMEN PROTECT"], "Intro line one\nline two."),
        (["LUMEN PROTECT", "CLAIMS"], "- File in the app."),
        (["LUMEN PROTECT", "NOTES"], "Keep receipts."),
    ]


def test_faq_csv_makes_one_section_per_pair_with_case_insensitive_columns() -> None:
    data = b'Question,ANSWER,tags\nHow do I pay?,"With Pix, card or boleto.",billing\nEmpty?,,x\n'
    parsed = parse_document(data, "faq.csv")
    assert [(s.heading_path, s.text) for s in parsed.sections] == [
        (["How do I pay?"], "With Pix, card or boleto.")
    ]


def test_faq_csv_without_the_expected_columns_names_them() -> None:
    with pytest.raises(DocumentError) as caught:
        parse_document(b"title,body\nA,B\n", "faq.csv")
    assert caught.value.reason == "missing_columns"
    assert "question" in caught.value.message and "answer" in caught.value.message


def test_faq_json_pairs_and_invalid_shapes() -> None:
    data = json.dumps([{"question": "Tem roaming?", "answer": "Não."}, {"Question": "Q2", "Answer": "A2"}])
    parsed = parse_document(data.encode(), "faq-pt.json")
    assert [s.heading_path for s in parsed.sections] == [["Tem roaming?"], ["Q2"]]
    assert _reason(b'{"question": "q", "answer": "a"}', "faq.json") == "invalid_faq"
    assert _reason(b'[{"question": "q"}]', "faq.json") == "invalid_faq"
    assert _reason(b"[{not json", "faq.json") == "corrupt"


def test_pdf_text_is_extracted_under_its_bookmarks() -> None:
    data = pdf_bytes(
        [["Return window", "You have 14 days to return a phone."], ["Ship times", "Orders ship in 2 days."]],
        outline=[("Returns", 0), ("Shipping", 1)],
    )
    parsed = parse_document(data, "policy.pdf")
    assert parsed.format is DocumentFormat.PDF
    assert [s.heading_path for s in parsed.sections] == [["Returns"], ["Shipping"]]
    assert "14 days to return" in parsed.sections[0].text
    assert "ship in 2 days" in parsed.sections[1].text


def test_encrypted_pdf_is_refused_as_encrypted() -> None:
    assert _reason(pdf_bytes([["secret plan"]], user_password="hunter2"), "secret.pdf") == "encrypted"


def test_corrupt_pdf_is_refused_as_corrupt() -> None:
    data = pdf_bytes([["hello there"]])
    assert _reason(data[: len(data) // 3], "broken.pdf") in {"corrupt", "no_text"}


def test_docx_headings_come_from_styles_with_lists_and_tables_as_text() -> None:
    parsed = parse_document(docx_bytes(), "guide.docx")
    assert parsed.format is DocumentFormat.DOCX
    assert parsed.title == "Store Guide"
    assert [(s.heading_path, s.text) for s in parsed.sections] == [
        (["Store Guide"], "Welcome to our stores."),
        (
            ["Store Guide", "Opening hours"],
            "Stores open every day.\n\n- Weekdays from 9 a.m.\n- Sundays from 11 a.m.",
        ),
        (["Store Guide", "Opening hours", "Pickup fees"], "Country | Fee\nBrazil | R$ 10"),
        (["Store Guide", "Returns"], "Bring the receipt."),
    ]


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"", "empty.md", "empty"),
        (b"  \n\n\t ", "blank.txt", "empty"),
        (bytes(range(256)) * 8, "notes.md", "unsupported_type"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "photo.md", "unsupported_type"),
        (b"%PDF-1.7\n%binary", "manual.md", "wrong_extension"),
        (b"# just markdown", "manual.pdf", "wrong_extension"),
        (b"# just markdown", "manual.docx", "wrong_extension"),
        (b"hello", "sheet.xlsx", "unsupported_type"),
        (b"<html><body><script>x()</script></body></html>", "only-script.html", "no_text"),
    ],
)
def test_bad_files_get_a_clear_reason(data: bytes, name: str, reason: str) -> None:
    assert _reason(data, name) == reason


def test_zip_that_is_not_a_word_document_is_unsupported() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert _reason(buffer.getvalue(), "archive.docx") == "unsupported_type"


def test_size_limits_refuse_large_files_and_zip_bombs() -> None:
    assert _reason(b"a" * 2048, "big.txt", ParseLimits(max_bytes=1024)) == "too_large"
    assert _reason(b"word " * 400, "long.txt", ParseLimits(max_chars=1000)) == "too_large"
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<" + b" " * 5_000_000 + b">")
    assert _reason(bomb.getvalue(), "bomb.docx") == "too_large"


def test_content_sniffing_without_an_extension() -> None:
    assert parse_document(b"<!DOCTYPE html><h1>Hi</h1><p>x</p>", "page").format is DocumentFormat.HTML
    assert parse_document(b'[{"question": "q", "answer": "a"}]', "faq").format is DocumentFormat.FAQ_JSON
    assert parse_document(b"plain words", "notes").format is DocumentFormat.TEXT


@pytest.mark.skipif(not EVAL_DIR.exists(), reason="needs shared/eval beside the checkout")
def test_every_labelled_section_of_the_eval_corpus_is_a_parsed_heading() -> None:
    parsed = {path.name: parse_document(path.read_bytes(), path.name) for path in (EVAL_DIR / "kb").iterdir()}
    assert len(parsed) == 14
    questions = [json.loads(line) for line in (EVAL_DIR / "questions.jsonl").read_text().splitlines() if line]
    for question in questions:
        headings = {h.casefold() for s in parsed[question["source"]].sections for h in s.heading_path}
        assert question["section"].casefold() in headings, question["id"]
        assert all(
            m.casefold() in parsed[question["source"]].text.casefold() for m in question["must_contain"]
        )


_PDF = pdf_bytes([["Warranty", "Twelve months from delivery."]], outline=[("Warranty", 0)])
_DOCX = docx_bytes()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(
        [b"", _PDF, _DOCX, b"# Title\n\ntext", b"question,answer\nq,a\n", b"<html><p>x</p>"]
    ),
    cut=st.floats(min_value=0, max_value=1),
    noise=st.binary(max_size=64),
    position=st.floats(min_value=0, max_value=1),
    name=st.sampled_from(["f.pdf", "f.docx", "f.md", "f.html", "f.txt", "f.csv", "f.json", "f", "f.bin"]),
)
def test_damaged_files_of_any_kind_fail_only_with_a_document_error(
    seed: bytes, cut: float, noise: bytes, position: float, name: str
) -> None:
    """Truncated and overwritten files: a parse either succeeds or says why; nothing else escapes."""
    data = seed[: max(1, int(len(seed) * (1 - cut / 2)))] if seed else noise
    at = int(len(data) * position)
    data = data[:at] + noise + data[at + len(noise) :]
    try:
        parsed = parse_document(data, name)
    except DocumentError as error:
        failure: DocumentError | None = error
    else:
        failure = None
        assert parsed.sections and all(section.text.strip() for section in parsed.sections)
    assert failure is None or (failure.reason and failure.message)
