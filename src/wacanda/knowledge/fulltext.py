"""PostgreSQL full-text search as measured by ``bench/retrieval_quality.py``.

Each chunk is indexed with its document's language configuration (``english``, ``portuguese``,
``spanish``) plus ``simple`` (names, numbers and words shared across languages), its title and
headings weighted ``A``. A query becomes an OR of its lexemes, normalised with each chunk's own
configuration (an AND of every word of a chatty WhatsApp message matches nothing), and is ranked
with ``ts_rank``, which scored better than ``ts_rank_cd`` for such OR queries.
"""

from __future__ import annotations

# The SQL takes the schema as a format field; tables are the caller's.
OR_TSQUERY_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.or_tsquery(config regconfig, query text) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(string_agg(quote_literal(lexeme), ' | ')::tsquery, ''::tsquery)
    FROM unnest(tsvector_to_array(to_tsvector(config, query))) AS lexeme
    WHERE position('\\' in lexeme) = 0
$$
"""

# A generated column over ``config regconfig``, ``context text`` (title and heading path) and ``body text``.
TSVECTOR_EXPRESSION = (
    "setweight(to_tsvector(config, context), 'A') || setweight(to_tsvector(config, body), 'B')"
    " || setweight(to_tsvector('simple', context || ' ' || body), 'D')"
)

# The query for one chunk's configuration: its own lexemes OR the unstemmed ones.
QUERY_EXPRESSION = "{schema}.or_tsquery({config}, {query}) || {schema}.or_tsquery('simple', {query})"

RANK_FUNCTION = "ts_rank"

# Matching ignores a knowledge base's most common lexemes (ranking still uses every lexeme): an OR
# query containing "the", "plan" or "month" matches most chunks of a large knowledge base, and
# ranking all of them is what makes full-text slow (ADR 0007). A lexeme is common when it is in
# more than ``max(COMMON_MIN_CHUNKS, COMMON_RATIO * chunks)`` chunks. Matching also stops adding
# lexemes, rarest first, once their chunk counts add up to ``MATCH_BUDGET``: the rows ranked stay
# bounded however large the knowledge base grows. The rarest lexeme that occurs at all always
# matches (lexemes absent from the knowledge base match nothing and are not counted).
COMMON_MIN_CHUNKS = 50
COMMON_RATIO = 0.01
MATCH_BUDGET = 1000


def common_threshold(chunks: int) -> int:
    return max(COMMON_MIN_CHUNKS, int(COMMON_RATIO * chunks))


OR_TSQUERY_EXCEPT_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.or_tsquery(config regconfig, query text, excluded text[]) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(string_agg(quote_literal(lexeme), ' | ')::tsquery, ''::tsquery)
    FROM unnest(tsvector_to_array(to_tsvector(config, query))) AS lexeme
    WHERE position('\\' in lexeme) = 0 AND lexeme <> ALL(excluded)
$$
"""

MATCH_EXPRESSION = (
    "{schema}.or_tsquery({config}, {query}, {excluded}) || {schema}.or_tsquery('simple', {query}, {excluded})"
)


def common_lexemes_sql(lexeme_counts: str) -> str:
    """The query's lexemes left out of matching as ``text[]``, from ``lexeme_counts`` (a relation of
    ``(lexeme, chunks)`` for every lexeme of the query, 0 when absent), given ``:threshold`` and
    ``:budget``."""
    return f"""
    SELECT coalesce(array_agg(lexeme) FILTER (
               WHERE chunks > 0 AND present > 1 AND (chunks > :threshold OR running > :budget)), '{{}}')
      FROM (SELECT lexeme, chunks, count(*) FILTER (WHERE chunks > 0) OVER rarest_first AS present,
                   sum(chunks) OVER rarest_first AS running
              FROM {lexeme_counts} WINDOW rarest_first AS (ORDER BY chunks, lexeme)) AS ranked
    """  # noqa: S608 (composed from this module's constants)


# One OR of every lexeme that some configuration's match query holds: a single GIN scan finds the
# candidates of all configurations at once (each chunk is then checked against its own).
ANY_MATCH_EXPRESSION = (
    "coalesce((string_agg(quote_literal({lexeme}), ' | ')"
    " FILTER (WHERE position('\\' in {lexeme}) = 0 AND {lexeme} <> ALL({excluded})))::tsquery, ''::tsquery)"
)


def tsvector_expression(config: str = "config", context: str = "context", body: str = "body") -> str:
    """``TSVECTOR_EXPRESSION`` over the caller's column names."""
    return (
        f"setweight(to_tsvector({config}, {context}), 'A') || setweight(to_tsvector({config}, {body}), 'B')"
        f" || setweight(to_tsvector('simple', {context} || ' ' || {body}), 'D')"
    )
