"""Full-text search in a real PostgreSQL: per-language stemming, OR queries, titles weighted first."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from wacanda.db import start_embedded, stop_embedded
from wacanda.knowledge import fulltext


@pytest.fixture(scope="module")
def conn() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with tempfile.TemporaryDirectory(prefix="wacanda-fts-") as tmp:
        try:
            with psycopg.connect(start_embedded(Path(tmp)), autocommit=True) as connection:
                connection.execute("CREATE SCHEMA kb")
                connection.execute(fulltext.OR_TSQUERY_FUNCTION.format(schema="kb"))
                connection.execute(
                    "CREATE TABLE kb.chunks (id int PRIMARY KEY, config regconfig NOT NULL,"
                    " context text NOT NULL, body text NOT NULL,"
                    f" tsv tsvector GENERATED ALWAYS AS ({fulltext.TSVECTOR_EXPRESSION}) STORED)"
                )
                rows = [
                    (
                        1,
                        "english",
                        "Returns > Return window",
                        "You have 14 days to return a phone you bought.",
                    ),
                    (2, "english", "Roaming > Travel Pass", "Travel Pass costs $12 per day in Europe."),
                    (
                        3,
                        "portuguese",
                        "FAQ > Como pago minha fatura?",
                        "Pague com Pix no aplicativo da Lumen.",
                    ),
                    (4, "english", "Billing > Autopay", "Autopay charges your card before each due date."),
                ]
                connection.cursor().executemany(
                    "INSERT INTO kb.chunks VALUES (%s, %s::regconfig, %s, %s)", rows
                )
                yield connection
        finally:
            stop_embedded(Path(tmp))


def _search(conn: psycopg.Connection[tuple[object, ...]], query: str) -> list[int]:
    tsq = fulltext.QUERY_EXPRESSION.format(schema="kb", config="c.config", query="%(q)s")
    sql = (  # built from the module's constants only; the query text is a bound parameter
        f"SELECT c.id FROM kb.chunks c, LATERAL (SELECT {tsq} AS q) query WHERE c.tsv @@ query.q"  # noqa: S608
        f" ORDER BY {fulltext.RANK_FUNCTION}(c.tsv, query.q) DESC, c.id"
    )
    rows = conn.execute(
        sql,
        {"q": query},
    ).fetchall()
    return [int(row[0]) for row in rows]


def test_a_chatty_question_matches_on_any_of_its_stemmed_words(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    assert _search(conn, "hey so I bought a phone last week, can I still return it??")[0] == 1


def test_portuguese_chunks_are_stemmed_in_portuguese(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    assert _search(conn, "como pagar as faturas com pix?")[0] == 3


def test_names_and_numbers_match_across_languages(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    assert _search(conn, "quanto custa o Travel Pass na Europa? $12?")[0] == 2


def test_emoji_only_and_stopword_only_queries_find_nothing_without_error(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    assert _search(conn, "🙂🙂👍") == []
    assert _search(conn, "the and of") == []
    assert _search(conn, "x" * 10_000 + " \\ ' : & | !") == []
