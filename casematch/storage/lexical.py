"""Query text -> the few query terms worth a BM25 lookup, as a safe FTS5 MATCH expression.

Terms are cut by SQLite's own FTS5 tokenizer (the one the index uses), so a query term is
exactly what the index stored: the same case folding, diacritics and Porter stems. Each
term is sent back as a double-quoted string, so quotes, `-`, `:`, `*`, `^`, parentheses
and the operators `AND`/`OR`/`NOT`/`NEAR` are plain words; the expression is bound as a
parameter.

Cost is bounded by postings, not by the size of the index: an FTS5 OR-query scores every
case that holds any of its terms (about 2 µs per matching case here, nearly all of it in
bm25()), so a long ticket body full of everyday words would touch most of a 100k-case
index. Terms are taken rarest first, as many as fit in `POSTINGS_BUDGET` postings. Rare
terms are where BM25's weight is (idf) and what lexical retrieval is for: error codes,
versions, product names. A common word adds little BM25 and nothing the dense side does
not already see.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# The index's tokenizer (store.FTS_SCHEMA) without the stemmer gives the raw form of each
# token, the one written in a MATCH expression; with it, the stem the lexicon counts.
TOKENIZER = "unicode61 remove_diacritics 2 tokenchars '_'"
STEMMING_TOKENIZER = "porter " + TOKENIZER

# Postings one query may touch. FTS5's bm25() costs ~2 µs per matching case, most of the
# lexical query's time: at 100k cases 5,000 postings took 6-9 ms p50 and 2,000 took 2.5
# (on 2 cores, beside the query embedding). GitBugs measured the same hybrid MRR with
# either (0.634), R@10 0.860 vs 0.864; StackFAQ identical (benchmarks/RESULTS.md).
POSTINGS_BUDGET = 2000
# Distinct terms read from a query: a whole ticket body, not just its first lines.
MAX_QUERY_TERMS = 400
# Terms sent to FTS5 at most, whatever the budget allows.
MAX_TERMS = 48

# Words with no lexical signal; dropping them before the lexicon lookup keeps it short.
_STOPWORDS_TEXT = """a about after again all also am an and any are as at be because been
before being
but by can could did do does doing don done for from get got had has have having he her
here hi hello him his how i if in into is it its just me my no nor not now of off on once
only or other our out please so some such than thank thanks that the their them then
there these they this those to too up us very was we were what when where which while
who why will with would you your"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


@dataclass(frozen=True, slots=True)
class Term:
    stem: str  # as counted in the index's lexicon
    raw: str  # as written in a MATCH expression (FTS5 stems it to `stem`)


class _Tokenizer(threading.local):
    """An in-memory FTS5 table per thread, used only to tokenize text the index's way."""

    def __init__(self) -> None:
        db = sqlite3.connect(":memory:")
        db.executescript(
            f'CREATE VIRTUAL TABLE stem USING fts5(x, tokenize="{STEMMING_TOKENIZER}");'
            "CREATE VIRTUAL TABLE stem_v USING fts5vocab(stem, 'instance');"
            f'CREATE VIRTUAL TABLE raw USING fts5(x, tokenize="{TOKENIZER}");'
            "CREATE VIRTUAL TABLE raw_v USING fts5vocab(raw, 'instance');"
        )
        self.db = db

    def terms(self, text: str) -> list[Term]:
        db = self.db
        with db:
            db.execute("DELETE FROM stem")
            db.execute("DELETE FROM raw")
            db.execute("INSERT INTO stem (x) VALUES (?)", (text,))
            db.execute("INSERT INTO raw (x) VALUES (?)", (text,))
        raw = dict(db.execute("SELECT offset, term FROM raw_v"))
        stems = db.execute("SELECT offset, term FROM stem_v ORDER BY offset").fetchall()
        return [Term(stem, raw[offset]) for offset, stem in stems if offset in raw]


_TOKENIZER = _Tokenizer()


def query_terms(text: str, limit: int = MAX_QUERY_TERMS) -> list[Term]:
    """Distinct terms of `text` in order of first appearance, stopwords dropped."""
    seen: dict[str, Term] = {}
    for term in _TOKENIZER.terms(text):
        if term.raw in STOPWORDS or term.stem in seen:
            continue
        seen[term.stem] = term
        if len(seen) >= limit:
            break
    return list(seen.values())


def select_terms(
    terms: list[Term],
    document_frequency: Callable[[list[str]], Mapping[str, int]],
    budget: int = POSTINGS_BUDGET,
    limit: int = MAX_TERMS,
) -> list[Term]:
    """The rarest `terms` whose postings fit in `budget` (the rarest one always).

    Terms no case holds are dropped: they cannot match.
    """
    counts = document_frequency([t.stem for t in terms])
    present = sorted((t for t in terms if counts.get(t.stem)), key=lambda t: counts[t.stem])
    chosen: list[Term] = []
    spent = 0
    for term in present[:limit]:
        spent += counts[term.stem]
        if chosen and spent > budget:
            break
        chosen.append(term)
    return chosen


def match_expression(terms: list[str]) -> str:
    """`"t1" OR "t2" ...`: any term may match; BM25 ranks by how many and how rare."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
