"""The support glossary that matches a customer's words with passages in another language: the
bundled file is well formed, words and phrases map to their concept's words in every language."""

from __future__ import annotations

from importlib.resources import files

from wacanda.answering.glossary import Glossary, parse, support_glossary
from wacanda.answering.words import content_terms, stem


def test_the_bundled_glossary_has_three_languages_on_every_line() -> None:
    text = files("wacanda.answering").joinpath("glossary.tsv").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(rows) >= 500
    for line in rows:
        cells = line.split("\t")
        assert len(cells) == 3 and all(cell.strip("| ") for cell in cells), line
    assert len(parse(text)) == len(rows)


def equivalents_of(glossary: Glossary, text: str) -> dict[str, frozenset[str]]:
    terms = content_terms(text)
    return dict(zip(terms, glossary.equivalents(terms), strict=True))


def test_support_words_find_their_english_equivalents() -> None:
    found = equivalents_of(support_glossary(), "pagar la factura en efectivo")
    assert stem("cash") in found[stem("efectivo")]
    assert stem("bill") in found[stem("factura")]
    assert stem("pay") in found[stem("pagar")]
    assert stem("bill") in equivalents_of(support_glossary(), "minha fatura")[stem("fatura")]
    assert equivalents_of(support_glossary(), "zxqw")["zxqw"] == {"zxqw"}  # unknown: itself only


def test_a_phrase_names_its_concept_only_when_its_words_come_together() -> None:
    glossary = Glossary([["bank", "banco", "cuenta bancaria"], ["bill", "factura", "cuenta"]])
    together = equivalents_of(glossary, "una cuenta bancaria")
    assert {"bank", "banco", "bill"} <= together[stem("cuenta")]
    assert {"bank", "banco"} <= together[stem("bancaria")]
    apart = equivalents_of(glossary, "bancaria sin cuenta")
    assert apart[stem("bancaria")] == {stem("bancaria")}
    assert "bank" not in apart[stem("cuenta")] and "bill" in apart[stem("cuenta")]


def test_comments_blank_lines_and_empty_entries_are_skipped() -> None:
    assert parse("# money\n\ncash|in cash|\tdinheiro\tefectivo| \n") == [
        ["cash", "in cash", "dinheiro", "efectivo"]
    ]
