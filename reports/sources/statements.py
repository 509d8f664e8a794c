"""One SELECT per query: split SQL the way its warehouse reads it, without a parser.

Strings, quoted names and comments are stepped over, so a `;` inside them never ends a statement.
Each warehouse quotes and comments a little differently (its `Lexicon`). Where the rules could be
read two ways, the split errs towards seeing more statements, so a doubtful query is refused, not run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from reports.errors import SourceError

ONE_SELECT = "a KPI runs exactly one SELECT statement"
SELECT_WORDS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "FROM"})  # FROM: BigQuery pipe syntax

_WORD = re.compile(r"[^\W\d][\w$]*")  # an identifier or keyword; PostgreSQL and MySQL allow `$` inside
_DOLLAR = re.compile(r"\$(?:[^\W\d]\w*)?\$")  # PostgreSQL's $tag$ that opens a dollar-quoted string


@dataclass(frozen=True)
class Lexicon:
    """How one SQL dialect quotes and comments."""

    quotes: str = "'\""  # characters that open a string or a quoted name
    backslash_strings: bool = False  # a backslash escapes the next character in every string
    escape_prefixes: frozenset[str] = frozenset()  # ...or only after these prefixes (PostgreSQL's E'')
    triple_quotes: bool = False  # '''...''' and """...""" (BigQuery)
    dollar_quotes: bool = False  # $tag$ ... $tag$ (PostgreSQL)
    nested_comments: bool = False  # /* a /* b */ c */ is one comment (PostgreSQL)
    hash_comments: bool = False  # `#` comments to the end of the line (BigQuery, MySQL)
    dash_needs_space: bool = False  # `--` starts a comment only before a blank (MySQL)
    bang_comments_run: bool = False  # /*! ... */ is code, not a comment (MySQL)


STANDARD = Lexicon()
LEXICONS = {
    "postgresql": Lexicon(escape_prefixes=frozenset({"e"}), dollar_quotes=True, nested_comments=True),
    "bigquery": Lexicon(quotes="'\"`", backslash_strings=True, triple_quotes=True, hash_comments=True),
    "mysql": Lexicon(
        quotes="'\"`",
        backslash_strings=True,
        hash_comments=True,
        dash_needs_space=True,
        bang_comments_run=True,
    ),
}
LEXICONS["mariadb"] = LEXICONS["mysql"]


@dataclass(frozen=True)
class Statement:
    text: str  # without its closing `;`
    kind: str  # its first word, upper-cased: SELECT, WITH, DELETE...


def split(sql: str, lexicon: Lexicon = STANDARD) -> list[Statement]:
    """The statements in `sql`; empty ones (only blanks and comments) are left out."""
    statements: list[Statement] = []
    start = i = 0
    first, code = "", False
    while i < len(sql):
        if sql[i] == ";":
            if code:
                statements.append(Statement(sql[start:i].strip(), first.upper()))
            start, first, code = i + 1, "", False
            i += 1
        elif sql[i].isspace():
            i += 1
        elif (end := _comment_end(sql, i, lexicon)) is not None:
            i = end
        else:
            code = True
            if word := _WORD.match(sql, i):
                first = first or word[0]
                i = word.end()
                if i < len(sql) and sql[i] in lexicon.quotes:  # a prefixed string: E'...', b'...'
                    i = _quoted_end(sql, i, lexicon, word[0].lower())
            elif sql[i] in lexicon.quotes:
                i = _quoted_end(sql, i, lexicon, "")
            elif lexicon.dollar_quotes and (tag := _DOLLAR.match(sql, i)):
                close = sql.find(tag[0], tag.end())
                i = len(sql) if close < 0 else close + len(tag[0])
            else:
                i += 1
    if code:
        statements.append(Statement(sql[start:].strip(), first.upper()))
    return statements


def _comment_end(sql: str, i: int, lexicon: Lexicon) -> int | None:
    """Where the comment starting at `i` ends, or None when no comment starts there."""
    dashes = sql.startswith("--", i) and (
        not lexicon.dash_needs_space or i + 2 >= len(sql) or sql[i + 2].isspace()
    )
    if dashes or (lexicon.hash_comments and sql[i] == "#"):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end + 1
    if not sql.startswith("/*", i) or (lexicon.bang_comments_run and sql.startswith("/*!", i)):
        return None
    if not lexicon.nested_comments:
        end = sql.find("*/", i + 2)
        return len(sql) if end < 0 else end + 2
    depth, j = 0, i
    while j < len(sql):
        if sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return len(sql)  # unclosed: the warehouse refuses it whole, so nothing after it counts


def _quoted_end(sql: str, i: int, lexicon: Lexicon, prefix: str) -> int:
    """Where the string or quoted name opening at `i` closes (the end of `sql` if it never does)."""
    quote = sql[i]
    close = quote * 3 if lexicon.triple_quotes and sql.startswith(quote * 3, i) else quote
    escapes = lexicon.backslash_strings or prefix in lexicon.escape_prefixes
    j = i + len(close)
    while j < len(sql):
        if escapes and sql[j] == "\\":
            j += 2
        elif sql.startswith(close, j):
            # A doubled quote is one quote inside the string; read as two strings side by side it
            # ends at the same place, so either reading gives the same split.
            if len(close) == 1 and sql.startswith(quote, j + 1):
                j += 2
            else:
                return j + len(close)
        else:
            j += 1
    return len(sql)


def only_select(sql: str, lexicon: Lexicon = STANDARD) -> str:
    """The one SELECT statement in `sql`, without its closing `;`; SourceError if there is any other."""
    statements = split(sql, lexicon)
    require_one([s.text for s in statements])
    kind = statements[0].kind
    if kind not in SELECT_WORDS:
        raise SourceError(
            f"the SQL starts with {kind or _preview(statements[0].text)}, not SELECT or WITH",
            f"{ONE_SELECT}; write it as SELECT ... or WITH ... SELECT",
        )
    return statements[0].text


def require_one(statements: Sequence[str]) -> None:
    """Refuse SQL that holds no statement, or more than one; `statements` are their texts."""
    if not statements:
        raise SourceError("the SQL holds no statement, only blanks or comments", f"{ONE_SELECT}; write it")
    if len(statements) > 1:
        raise several_statements(
            f"the SQL holds {len(statements)} statements; the second, `{_preview(statements[1])}`, "
            "would run too"
        )


def several_statements(message: str) -> SourceError:
    return SourceError(message, f"{ONE_SELECT}; remove the second statement")


def not_a_select(kind: str) -> SourceError:
    kind = kind.replace("_", " ")
    return SourceError(
        f"the SQL is {'an' if kind[:1] in 'AEIOU' else 'a'} {kind} statement, not a SELECT",
        f"{ONE_SELECT}; Herald only reads, so write it as SELECT ... or WITH ... SELECT",
    )


def _preview(text: str, width: int = 48) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
