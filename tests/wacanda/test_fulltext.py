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
                connection.execute(fulltext.OR_TSQUERY_EXCEPT_FUNCTION.format(schema="kb"))
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


def test_excluded_lexemes_are_left_out_of_the_match_query(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    (query,) = conn.execute(
        "SELECT kb.or_tsquery('english', 'the refunds of my phones', ARRAY['refund'])::text"
    ).fetchone()  # type: ignore[misc]
    assert query == "'phone'"


def _common(
    conn: psycopg.Connection[tuple[object, ...]],
    counts: list[tuple[str, int]],
    threshold: int,
    budget: int = fulltext.MATCH_BUDGET,
) -> set[str]:
    values = ", ".join(f"(%(l{i})s::text, %(c{i})s::int)" for i in range(len(counts)))
    relation = f"(VALUES {values}) AS counts(lexeme, chunks)"
    sql = (
        fulltext.common_lexemes_sql(relation)
        .replace(":threshold", "%(threshold)s")
        .replace(":budget", "%(budget)s")
    )
    params: dict[str, object] = {"threshold": threshold, "budget": budget}
    for i, (lexeme, chunks) in enumerate(counts):
        params |= {f"l{i}": lexeme, f"c{i}": chunks}
    (lexemes,) = conn.execute(sql, params).fetchone()  # type: ignore[misc]
    return set(lexemes)


def test_common_lexemes_are_those_in_more_chunks_than_the_threshold(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    assert _common(conn, [("the", 900), ("refund", 3), ("phone", 400)], 100) == {"the", "phone"}
    assert _common(conn, [("refund", 3), ("unknown", 0)], 100) == set()


def test_when_every_lexeme_is_common_the_rarest_still_matches(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    assert _common(conn, [("the", 900), ("plan", 400), ("month", 300)], 100) == {"the", "plan"}


def test_lexemes_absent_from_the_knowledge_base_do_not_hide_the_rarest_present_one(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    # "hey" occurs nowhere: matching on it alone would find nothing at all.
    assert _common(conn, [("hey", 0), ("the", 900), ("plan", 400)], 100) == {"the"}


def test_matching_stops_adding_lexemes_once_their_chunks_reach_the_budget(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    counts = [("roaming", 30), ("europe", 45), ("pass", 90), ("travel", 95)]
    assert _common(conn, counts, threshold=100, budget=1000) == set()
    assert _common(conn, counts, threshold=100, budget=100) == {"pass", "travel"}  # 30 + 45 fit, + 90 not
    assert _common(conn, counts, threshold=100, budget=10) == {"europe", "pass", "travel"}  # the rarest stays


def test_the_common_threshold_grows_with_the_knowledge_base() -> None:
    assert fulltext.common_threshold(100) == fulltext.COMMON_MIN_CHUNKS
    assert fulltext.common_threshold(100_000) == 1_000
