"""Split parsed documents into retrieval chunks along their structure.

Sections (one heading path each) are never merged, so every chunk cites exactly one heading.
A section that is too long is cut at paragraph boundaries, then at line breaks (list items,
table rows), then at sentence ends, and only as a last resort between words. Each chunk's
text is an exact slice of its section's text, which keeps citations and highlighting honest.

Sizes are counted in tokens of the embedding model (``count_tokens``): tiktoken's
``cl100k_base`` cannot be used offline (it downloads its BPE file at run time), and what
matters for an embedding is the model's own 512-token window anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from wacanda.knowledge.parsing import ParsedDocument

TokenCounter = Callable[[str], int]

# Abbreviations whose period does not end a sentence (English, Portuguese, Spanish support text).
_ABBREVIATIONS = frozenset(
    {
        "a.m.", "p.m.", "e.g.", "i.e.", "etc.", "vs.", "mr.", "mrs.", "ms.", "dr.", "st.", "no.",
        "approx.", "min.", "max.", "u.s.", "sr.", "sra.", "av.", "núm.", "nº.", "pág.", "ex.",
    }
)  # fmt: skip
_SENTENCE_ENDS = ".!?…。"
_CLOSERS = "\"')]}»\u201d\u2019"


def count_words(text: str) -> int:
    """A tokenizer-free stand-in (about 0.75 of a subword count) for tests and tools."""
    return len(text.split())


@dataclass(frozen=True)
class ChunkingOptions:
    """``max_tokens`` bounds a chunk's body; ``overlap_tokens`` of trailing sentences repeat in the
    next chunk of the same section so that a fact cut in two is still found whole once."""

    max_tokens: int = 256
    overlap_tokens: int = 32

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ValueError("max_tokens must be at least 8")
        if not 0 <= self.overlap_tokens < self.max_tokens // 2 + 1:
            raise ValueError("overlap_tokens must be between 0 and half of max_tokens")


@dataclass(frozen=True)
class Chunk:
    document_title: str
    heading_path: list[str]
    text: str
    index: int  # position in the document
    section_index: int
    start: int  # character offsets of ``text`` in its section's text
    end: int
    token_count: int

    @property
    def heading(self) -> str:
        """The innermost heading, as shown next to a citation (empty before the first heading)."""
        return self.heading_path[-1] if self.heading_path else ""

    @property
    def context_path(self) -> list[str]:
        """Title then headings, without repeating the title when the top heading restates it."""
        path = list(self.heading_path)
        if path and path[0].casefold() == self.document_title.casefold():
            path = path[1:]
        return [self.document_title, *path]

    def embedding_text(self) -> str:
        """What gets embedded and indexed: the chunk's place in the document, then its text."""
        return " > ".join(self.context_path) + "\n\n" + self.text


def chunk_document(
    document: ParsedDocument, count_tokens: TokenCounter, options: ChunkingOptions | None = None
) -> list[Chunk]:
    options = options or ChunkingOptions()
    chunks: list[Chunk] = []
    for section_index, section in enumerate(document.sections):
        for start, end in chunk_spans(section.text, count_tokens, options):
            text = section.text[start:end]
            chunks.append(
                Chunk(
                    document_title=document.title,
                    heading_path=list(section.heading_path),
                    text=text,
                    index=len(chunks),
                    section_index=section_index,
                    start=start,
                    end=end,
                    token_count=count_tokens(text),
                )
            )
    return chunks


def chunk_spans(text: str, count_tokens: TokenCounter, options: ChunkingOptions) -> list[tuple[int, int]]:
    """Character spans of ``text``'s chunks, each at most ``options.max_tokens`` tokens."""
    limit = options.max_tokens
    if not text.strip():
        return []
    whole = _trim(text, 0, len(text))
    if count_tokens(text[whole[0] : whole[1]]) <= limit:
        return [whole]
    units = list(_units(text, whole[0], whole[1], count_tokens, limit, level=0))
    return _pack(text, units, count_tokens, options)


def _pack(
    text: str, units: list[tuple[int, int]], count_tokens: TokenCounter, options: ChunkingOptions
) -> list[tuple[int, int]]:
    """Greedily join consecutive units while the joined slice fits; start each next chunk with the
    previous chunk's trailing units that fit in the overlap budget."""
    spans: list[tuple[int, int]] = []
    first = 0
    while first < len(units):
        last = first
        while (
            last + 1 < len(units)
            and count_tokens(text[units[first][0] : units[last + 1][1]]) <= options.max_tokens
        ):
            last += 1
        spans.append((units[first][0], units[last][1]))
        if last + 1 >= len(units):
            break
        next_first = last + 1
        if options.overlap_tokens:
            back = last
            while (
                back > first
                and count_tokens(text[units[back][0] : units[last][1]]) <= options.overlap_tokens
                and count_tokens(text[units[back][0] : units[next_first][1]]) <= options.max_tokens
            ):
                next_first = back
                back -= 1
        first = next_first
    return spans


def _units(
    text: str, start: int, end: int, count_tokens: TokenCounter, limit: int, level: int
) -> Iterator[tuple[int, int]]:
    """Spans no longer than ``limit``, cut at the coarsest boundary that works."""
    splitters = (_paragraph_spans, _line_spans, _sentence_spans, _word_spans)
    for piece in splitters[level](text, start, end):
        if count_tokens(text[piece[0] : piece[1]]) <= limit:
            yield piece
        elif level + 1 < len(splitters):
            yield from _units(text, piece[0], piece[1], count_tokens, limit, level + 1)
        else:
            yield from _character_spans(text, piece[0], piece[1], count_tokens, limit)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_on(text: str, start: int, end: int, separator: str) -> Iterator[tuple[int, int]]:
    position = start
    while position < end:
        found = text.find(separator, position, end)
        stop = end if found < 0 else found
        piece = _trim(text, position, stop)
        if piece[0] < piece[1]:
            yield piece
        position = stop + len(separator) if found >= 0 else end


def _paragraph_spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    return _split_on(text, start, end, "\n\n")


def _line_spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    return _split_on(text, start, end, "\n")


def _sentence_spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Sentence ends are ``.!?…`` (plus closing quotes/brackets) before whitespace, except after a
    known abbreviation or a single letter (initials)."""
    sentence_start = start
    position = start
    while position < end:
        char = text[position]
        if char in _SENTENCE_ENDS:
            stop = position + 1
            while stop < end and (text[stop] in _SENTENCE_ENDS or text[stop] in _CLOSERS):
                stop += 1
            if stop >= end or text[stop].isspace():
                word_start = text.rfind(" ", sentence_start, position) + 1
                word = text[max(word_start, sentence_start) : stop].casefold().strip(_CLOSERS)
                is_initial = len(word) == 2 and word[0].isalpha()
                if word not in _ABBREVIATIONS and not is_initial:
                    piece = _trim(text, sentence_start, stop)
                    if piece[0] < piece[1]:
                        yield piece
                    sentence_start = stop
            position = stop
        else:
            position += 1
    piece = _trim(text, sentence_start, end)
    if piece[0] < piece[1]:
        yield piece


def _word_spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    position = start
    while position < end:
        while position < end and text[position].isspace():
            position += 1
        word_end = position
        while word_end < end and not text[word_end].isspace():
            word_end += 1
        if position < word_end:
            yield position, word_end
        position = word_end


def _character_spans(
    text: str, start: int, end: int, count_tokens: TokenCounter, limit: int
) -> Iterator[tuple[int, int]]:
    """A single "word" longer than the limit (a URL, a base64 blob): cut it by bisection."""
    while start < end:
        low, high = start + 1, end
        while low < high:
            middle = (low + high + 1) // 2
            if count_tokens(text[start:middle]) <= limit:
                low = middle
            else:
                high = middle - 1
        yield start, low
        start = low
