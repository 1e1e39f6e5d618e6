"""The committed API reference is what the app serves: regenerate it when a route changes."""

from __future__ import annotations

from pathlib import Path

from scripts.gen_api_docs import DOC, generate


def test_docs_api_md_matches_the_openapi_document() -> None:
    assert Path(__file__).resolve().parents[1] / "docs" / "api.md" == DOC
    assert DOC.read_text() == generate(), (
        "docs/api.md is stale: run `.venv/bin/python scripts/gen_api_docs.py` and commit the result"
    )
