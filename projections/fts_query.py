"""FTS5 query text and snippets: turn what a person typed into a safe MATCH, highlight hits.

Any string is a valid query: by default each word (or each "quoted phrase") becomes an FTS5
phrase, so quotes, operators, punctuation and unicode are searched for, never interpreted.
`syntax=True` passes FTS5 query syntax through (AND, OR, NOT, NEAR, prefix*, column filters).

Tokens come from FTS5's own tokenizers (through apsw, on a private in-memory connection), so
the query, the index and the highlighted snippet agree on what a word is. Chinese, Japanese and
Korean put no space between words, where FTS5's unicode61 would make a whole sentence one token:
each of their characters is a token of its own (the index is given `spaced` text), and a word
of them is searched for as the phrase of its characters, which finds it anywhere in a sentence.
"""

from __future__ import annotations

import functools
import re
import threading
from bisect import bisect_right
from collections.abc import Sequence

import apsw

__all__ = [
    "TEXT_TOKENIZE", "CODE_TOKENIZE", "code_match", "highlight", "match_expression", "query_tokens",
    "snippet", "spaced", "tokens",
]

TEXT_TOKENIZE = ("unicode61", "remove_diacritics", "2")
"""The `tokenize` option of the word index: unicode words, case and diacritics folded."""
CODE_TOKENIZE = ("trigram", "remove_diacritics", "1")
"""The `tokenize` option of the substring index (code and paths)."""

MARK_START, MARK_END = "**", "**"
"""How a snippet marks a matched word (Markdown bold: readable as text and as Markdown)."""

_UNSPACED = (
    "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f"
    "\uac00-\ud7ff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003ffff"
)
"""Hangul, kana and Han characters: the scripts written without spaces between words."""
_UNSPACED_CHAR = re.compile(f"([{_UNSPACED}])")
_UNSPACED_RUN = re.compile(f"[{_UNSPACED}]+")

_lock = threading.Lock()


@functools.cache
def _tokenizer(spec: tuple[str, ...]) -> apsw.FTS5Tokenizer:
    connection = apsw.Connection(":memory:")
    return connection.fts5_tokenizer(spec[0], list(spec[1:]))


def _pieces(text: str) -> list[str] | None:
    """The text cut around each character of a script written without spaces; None: it has none."""
    if text.isascii() or _UNSPACED_CHAR.search(text) is None:
        return None
    return [piece for piece in _UNSPACED_CHAR.split(text) if piece]


def spaced(text: str) -> str:
    """The text as the word index is given it: a space around each Chinese, Japanese or Korean
    character, so that each is a token of its own (what `tokens` gives)."""
    pieces = _pieces(text)
    return text if pieces is None else " ".join(pieces)


def tokens(text: str, spec: tuple[str, ...] = TEXT_TOKENIZE, *, query: bool = False) -> list[tuple[int, int, str]]:
    """FTS5's tokens of a text: (start, end, token) with UTF-8 byte offsets. With the word
    index's tokenizer, each Chinese, Japanese or Korean character is a token (see `spaced`)."""
    reason = apsw.FTS5_TOKENIZE_QUERY if query else apsw.FTS5_TOKENIZE_DOCUMENT
    pieces = _pieces(text) if spec == TEXT_TOKENIZE else None
    data = text.encode("utf-8", "surrogatepass") if pieces is None else " ".join(pieces).encode(
        "utf-8", "surrogatepass")
    with _lock:
        found = _tokenizer(spec)(data, reason, None, include_colocated=False)
    if pieces is None:
        return [(t[0], t[1], t[2]) for t in found]
    starts, at = [], 0  # where each piece starts in the spaced text: piece k is k spaces further on
    for k, piece in enumerate(pieces):
        starts.append(at + k)
        at += len(piece.encode("utf-8", "surrogatepass"))
    out = []
    for t in found:
        k = bisect_right(starts, t[0]) - 1
        out.append((t[0] - k, t[1] - k, t[2]))
    return out


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


_PIECE = re.compile(r'"([^"]*)"?|(\S+)')


def query_tokens(query: str) -> list[tuple[list[str], bool]]:
    """The phrases of a typed query: (tokens, is_prefix) for each word or "quoted phrase"."""
    phrases = []
    for m in _PIECE.finditer(query):
        quoted, word = m.group(1), m.group(2)
        piece = quoted if quoted is not None else word
        prefix = False
        if word is not None and len(word) > 1 and word.endswith("*") and not word.endswith("**"):
            piece, prefix = word[:-1], True
        found = [t[2] for t in tokens(piece, query=True)]
        if found:
            phrases.append((found, prefix))
    return phrases


def match_expression(query: str, *, syntax: bool = False) -> str | None:
    """The MATCH text for a typed query, or None when it holds nothing searchable.

    Words are ANDed, each once (a word pasted a thousand times cost FTS5 a thousand phrases); a
    trailing `*` on a word makes it a prefix. With `syntax`, the query is FTS5 syntax and is
    passed through unchanged, but for Chinese, Japanese and Korean words, which become the
    phrases of their characters (see `spaced`).
    """
    if syntax:
        return _phrases_of_unspaced(query) if query.strip() else None
    parts = dict.fromkeys(_quote(" ".join(found)) + ("*" if prefix else "") for found, prefix in query_tokens(query))
    return " ".join(parts) or None


def _phrases_of_unspaced(query: str) -> str:
    """FTS5 syntax with each run of Chinese, Japanese or Korean characters made the phrase of its
    characters: quoted where it stands bare, spaced inside a string (FTS5 doubles a quote inside a
    string, so every other piece between quotes is inside one)."""
    if query.isascii():
        return query
    parts = query.split('"')
    for i, part in enumerate(parts):
        parts[i] = _UNSPACED_RUN.sub(
            (lambda m: " " + " ".join(m.group()) + " ") if i % 2 else (lambda m: '"' + " ".join(m.group()) + '"'),
            part)
    return '"'.join(parts)


def code_match(query: str, *, most: int = 16) -> str | None:
    """A MATCH for the substring index: every trigram of the query ANDed (None if under 3 chars).

    The index keeps no positions (detail=none), so this finds candidates; the caller checks
    that the substring really occurs. At most `most` trigrams, spread over the query.
    """
    grams = list(dict.fromkeys(t[2] for t in tokens(query.strip(), CODE_TOKENIZE, query=True)))
    if not grams:
        return None
    if len(grams) > most:
        step = (len(grams) - 1) / (most - 1)
        grams = [grams[round(i * step)] for i in range(most)]
    return " AND ".join(_quote(g) for g in grams)


def _terms(query: str, syntax: bool) -> tuple[set[str], tuple[str, ...]]:
    """Words to highlight for a query: exact tokens and prefixes."""
    if syntax:
        words = re.sub(r"\b(AND|OR|NOT|NEAR)\b|[(){}:^*+\-]", " ", query)
        found = {t[2] for t in tokens(words, query=True)}
        return found, tuple(found)
    exact: set[str] = set()
    prefixes: list[str] = []
    for found, prefix in query_tokens(query):
        exact.update(found)
        if prefix:
            prefixes.append(found[-1])
    return exact, tuple(prefixes)


def snippet(text: str, query: str, *, syntax: bool = False, width: int = 160,
            substring: str | None = None) -> str:
    """A one-line extract of `text` around the densest cluster of query words, words marked.

    With `substring`, mark that (case-insensitive) substring instead of words.
    """
    if substring:
        return _substring_snippet(text, substring, width)
    exact, prefixes = _terms(query, syntax)
    data = text.encode("utf-8", "surrogatepass")
    toks = tokens(text)
    hits = [i for i, t in enumerate(toks) if t[2] in exact or (prefixes and t[2].startswith(prefixes))]
    if not hits:
        return _one_line(data[: width * 2].decode("utf-8", "ignore"))[:width]
    best = _densest(toks, hits, width)
    first = max(0, best - 3)
    start = toks[first][0] if first else 0
    pieces: list[str] = ["…"] if start > 0 else []
    cursor = start
    marks: list[tuple[int, int]] = []
    for i in hits:
        s, e, _ = toks[i]
        if s < start:
            continue
        if e - start > width:
            break
        marks.append((s, e))
        cursor = e
    stop = max(cursor, start + width)
    pieces.append(_marked(data, start, stop, marks))
    if stop < len(data):
        pieces.append("…")
    return _one_line("".join(pieces))


def _densest(toks: list[tuple[int, int, str]], hits: list[int], width: int) -> int:
    """The hit starting the window of `width` bytes that holds the most distinct query words."""
    best, best_count = hits[0], 0
    inside: dict[str, int] = {}
    end = 0
    for k, i in enumerate(hits):  # a sliding window over the hits: O(hits)
        while end < len(hits) and toks[hits[end]][0] - toks[i][0] < width:
            word = toks[hits[end]][2]
            inside[word] = inside.get(word, 0) + 1
            end += 1
        if len(inside) > best_count:
            best, best_count = i, len(inside)
        word = toks[i][2]
        inside[word] -= 1
        if not inside[word]:
            del inside[word]
    return best


def highlight(text: str, words: Sequence[str]) -> str:
    """The whole text with the given words marked (for people reading a full result)."""
    wanted = {t[2] for w in words for t in tokens(w, query=True)}
    data = text.encode("utf-8", "surrogatepass")
    return _marked(data, 0, len(data), [(s, e) for s, e, tok in tokens(text) if tok in wanted])


def _marked(data: bytes, start: int, stop: int, marks: list[tuple[int, int]]) -> str:
    """`data[start:stop]` as text, each (start, end) of `marks` marked; marks that touch are one
    (the characters of a Chinese, Japanese or Korean word are tokens side by side)."""
    out, cursor, open_mark = [], start, False
    for s, e in marks:
        if open_mark and s == cursor:
            out.append(data[s:e].decode("utf-8", "ignore"))
        else:
            if open_mark:
                out.append(MARK_END)
            out += [data[cursor:s].decode("utf-8", "ignore"), MARK_START, data[s:e].decode("utf-8", "ignore")]
        cursor, open_mark = e, True
    if open_mark:
        out.append(MARK_END)
    out.append(data[cursor:stop].decode("utf-8", "ignore"))
    return "".join(out)


def _substring_snippet(text: str, needle: str, width: int) -> str:
    at = text.casefold().find(needle.strip().casefold())
    if at < 0 or len(text.casefold()) != len(text):
        return _one_line(text[:width])
    end = at + len(needle.strip())
    start = max(0, at - (width - (end - at)) // 3)
    stop = min(len(text), start + max(width, end - start))
    return _one_line(("…" if start else "") + text[start:at] + MARK_START + text[at:end] + MARK_END
                     + text[end:stop] + ("…" if stop < len(text) else ""))


_SPACE = re.compile(r"\s+")


def _one_line(text: str) -> str:
    return _SPACE.sub(" ", text).strip()
