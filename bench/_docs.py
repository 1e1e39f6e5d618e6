"""Writing a benchmark's figures into ``docs/benchmarks.md``.

Each benchmark owns the text between its own start and end markers there; one helper replaces
it so that every benchmark rewrites only its section and leaves the others (and any hand-written
text around them) as they were.
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def replace_section(start: str, end: str, section: str, *, notes: str | None = None) -> None:
    """Put ``section`` between ``start`` and ``end`` in the docs, appending the block when missing.

    With ``notes`` (a marker), hand-written notes that follow that marker inside the old block
    are kept after the new figures, so a run never erases what people wrote about it. A file
    whose end marker comes only before its start marker is refused rather than rewritten.
    """
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        head, _, rest = text.partition(start)
        old, found, tail = rest.partition(end)
        if not found:
            raise ValueError(f"{DOCS}: {end!r} does not follow {start!r}")
        if notes is not None and notes in old:
            block = f"{start}\n{section}\n\n{notes}{old.partition(notes)[2].rstrip()}\n{end}"
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOCS.write_text(text)
