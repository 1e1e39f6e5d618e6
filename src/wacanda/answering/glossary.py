"""Support vocabulary across English, Portuguese and Spanish, for matching a customer's words
against passages in another language offline ("efectivo" finds "cash", "fatura" finds "bill").

``glossary.tsv`` holds one concept per line (``en<TAB>pt<TAB>es``, synonyms and inflections
separated by ``|``): about 550 concepts of billing, payments, plans, devices, delivery, accounts,
stores and support, written from general knowledge, not from any evaluation set. Words are
compared as the answerer compares them (folded, stop words dropped, crudely stemmed), so the
lookup costs a dictionary access per word.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib.resources import files

from wacanda.answering.words import content_terms

MAX_PHRASE = 4  # longest glossary phrase looked for in a question, in content words


class Glossary:
    """Concepts by the stems that name them; a phrase ("cuenta bancaria") names its concept only
    when its words come together."""

    def __init__(self, concepts: Sequence[Sequence[str]]) -> None:
        self._words: dict[str, set[int]] = {}
        self._phrases: dict[tuple[str, ...], set[int]] = {}
        self._names: list[frozenset[str]] = []
        for index, entries in enumerate(concepts):
            names: set[str] = set()
            for entry in entries:
                terms = tuple(content_terms(entry))
                if len(terms) == 1:
                    self._words.setdefault(terms[0], set()).add(index)
                    names.add(terms[0])
                elif 1 < len(terms) <= MAX_PHRASE:
                    self._phrases.setdefault(terms, set()).add(index)
            self._names.append(frozenset(names))

    def equivalents(self, terms: Sequence[str]) -> list[frozenset[str]]:
        """For each of ``terms`` (a text's content terms, in order): the term itself and the
        single-word names, in every language, of the concepts it or a phrase around it names."""
        found: list[set[int]] = [set(self._words.get(term, ())) for term in terms]
        for size in range(2, MAX_PHRASE + 1):
            for start in range(len(terms) - size + 1):
                concepts = self._phrases.get(tuple(terms[start : start + size]))
                if concepts:
                    for position in range(start, start + size):
                        found[position] |= concepts
        return [
            frozenset({term}.union(*(self._names[c] for c in concepts)))
            for term, concepts in zip(terms, found, strict=True)
        ]


def parse(text: str) -> list[list[str]]:
    """The concepts of a ``glossary.tsv``: comment lines (``#``) and blank ones skipped."""
    concepts = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        concepts.append(
            [entry.strip() for cell in line.split("\t") for entry in cell.split("|") if entry.strip()]
        )
    return concepts


@cache
def support_glossary() -> Glossary:
    return Glossary(parse(files("wacanda.answering").joinpath("glossary.tsv").read_text(encoding="utf-8")))
