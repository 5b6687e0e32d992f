"""Lexical facts about normalized query text (pg_stat_statements' `$n` form).

Query text is untrusted data: it is only ever PREPAREd after `single_statement()`
confirms it is one statement of a plannable kind, never concatenated into other SQL.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

PLANNABLE = {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES", "TABLE"}
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")
_PARAM = re.compile(r"\$(\d+)")
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9$]*")


@dataclass(frozen=True)
class Token:
    kind: str      # 'word', 'ident' (quoted), 'string', 'param', 'number', 'op', 'semicolon'
    text: str
    pos: int


def tokens(sql: str) -> list[Token]:
    """Tokens outside comments; string literals, quoted identifiers and dollar quotes
    are single tokens so nothing inside them is mistaken for syntax."""
    out: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:       # PostgreSQL block comments nest
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            i = j
        elif c == "'" or (c in "eEnNbBxXuU" and sql.startswith("'", i + 1)) or sql.startswith(("U&'", "u&'"), i):
            j = sql.index("'", i) + 1
            backslash = c in "eE"
            while j < n:
                if backslash and sql[j] == "\\":
                    j += 2
                elif sql[j] == "'":
                    if sql.startswith("''", j):
                        j += 2
                    else:
                        break
                else:
                    j += 1
            out.append(Token("string", sql[i:j + 1], i))
            i = j + 1
        elif c == '"':
            j = i + 1
            while j < n:
                if sql.startswith('""', j):
                    j += 2
                elif sql[j] == '"':
                    break
                else:
                    j += 1
            out.append(Token("ident", sql[i:j + 1], i))
            i = j + 1
        elif c == "$":
            m = _PARAM.match(sql, i)
            if m:
                out.append(Token("param", m.group(0), i))
                i = m.end()
                continue
            m = _DOLLAR_TAG.match(sql, i)
            if m:
                end = sql.find(m.group(0), m.end())
                end = n if end < 0 else end + len(m.group(0))
                out.append(Token("string", sql[i:end], i))
                i = end
            else:
                out.append(Token("op", c, i))
                i += 1
        elif c == ";":
            out.append(Token("semicolon", c, i))
            i += 1
        elif c.isalpha() or c == "_":
            m = _WORD.match(sql, i)
            out.append(Token("word", m.group(0), i))
            i = m.end()
        elif c.isdigit() or (c == "." and i + 1 < n and sql[i + 1].isdigit()):
            m = re.match(r"\d*\.?\d+(?:[eE][+-]?\d+)?", sql[i:])
            out.append(Token("number", m.group(0), i))
            i += m.end()
        else:
            m = re.match(r"[+\-*/<>=~!@#%^&|`?]+|::|.", sql[i:])
            out.append(Token("op", m.group(0), i))
            i += m.end()
    return out


def verb(sql: str) -> str:
    """First keyword, upper case ('' if none)."""
    for t in tokens(sql):
        return t.text.upper() if t.kind == "word" else ""
    return ""


def single_statement(sql: str) -> str | None:
    """Why the text must not be PREPAREd, or None if it is one plannable statement."""
    toks = tokens(sql)
    if not toks:
        return "empty statement"
    semis = [k for k, t in enumerate(toks) if t.kind == "semicolon"]
    if semis and (len(semis) > 1 or semis[0] != len(toks) - 1):
        return "more than one statement"
    v = verb(sql)
    if v not in PLANNABLE:
        return f"utility statement ({v or 'unknown'}) cannot be explained"
    return None


def explained(sql: str) -> str:
    """The statement an `EXPLAIN [ANALYZE] [VERBOSE] [(options)]` text explains, from its
    first token; any other text as it is. Its queryid is the statement's own."""
    toks = tokens(sql)
    if not toks or toks[0].kind != "word" or toks[0].text.upper() != "EXPLAIN":
        return sql
    k = 1
    if k < len(toks) and toks[k].text == "(":
        depth = 0
        while k < len(toks):
            depth += {"(": 1, ")": -1}.get(toks[k].text, 0)
            k += 1
            if depth == 0:
                break
    while k < len(toks) and toks[k].kind == "word" and toks[k].text.upper() in ("ANALYZE", "ANALYSE", "VERBOSE"):
        k += 1
    return sql[toks[k].pos:] if k < len(toks) else sql


def strip_semicolon(sql: str) -> str:
    toks = tokens(sql)
    if toks and toks[-1].kind == "semicolon":
        return sql[:toks[-1].pos].rstrip()
    return sql.rstrip()


def param_numbers(sql: str) -> list[int]:
    return sorted({int(t.text[1:]) for t in tokens(sql) if t.kind == "param"})


def limit_params(sql: str) -> set[int]:
    """Parameters used as LIMIT/OFFSET/FETCH counts (their values come from rows per call)."""
    toks = tokens(sql)
    out = set()
    for a, b in zip(toks, toks[1:]):
        if a.kind == "word" and a.text.upper() in ("LIMIT", "OFFSET", "FIRST", "NEXT") and b.kind == "param":
            out.add(int(b.text[1:]))
    return out


def _unquote(tok: Token) -> str:
    return tok.text[1:-1].replace('""', '"') if tok.kind == "ident" else tok.text.lower()


def identifiers(sql: str) -> set[str]:
    """Every name the text mentions (lower-cased unless quoted): whether it names a table."""
    return {_unquote(t) for t in tokens(sql) if t.kind in ("word", "ident")}


def update_set_columns(sql: str) -> set[str]:
    """Columns an UPDATE assigns (`SET a = ..., (b, c) = ...`), lower-cased unless quoted."""
    toks = tokens(sql)
    if not toks or toks[0].text.upper() != "UPDATE":
        return set()
    start = next((k for k, t in enumerate(toks) if t.kind == "word" and t.text.upper() == "SET"), None)
    if start is None:
        return set()
    out, depth, expect = set(), 0, True
    for k in range(start + 1, len(toks)):
        t = toks[k]
        if depth == 0 and t.kind == "word" and t.text.upper() in ("WHERE", "FROM", "RETURNING"):
            break
        if t.text == "(":
            if expect:            # (a, b) = (...) multi-column assignment
                k2 = k + 1
                while k2 < len(toks) and toks[k2].text != ")":
                    if toks[k2].kind in ("word", "ident"):
                        out.add(_unquote(toks[k2]))
                    k2 += 1
                expect = False
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif depth == 0 and t.text == ",":
            expect = True
        elif expect and t.kind in ("word", "ident"):   # SET col[.field|[i]] = ...: col is assigned
            out.add(_unquote(t))
            expect = False
    return out


def quote_literal(value: str) -> str:
    """SQL string literal, valid whatever standard_conforming_strings says."""
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"
