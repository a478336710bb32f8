"""Tokenisation for the encoders: safe from many threads, bounded in memory for very long texts.

Threads. transformers' fast tokenizer stores the truncation of a call on its Rust backend
(``enable_truncation``) and then encodes with it; two threads truncating at different lengths (ColBERT's
queries and documents, a per-call ``max_length``) take each other's length, or fail with "Already
borrowed" when one thread reconfigures the backend while another encodes. ``TextTokenizer`` keeps a
private copy of the backend (the user's ``encoder.tokenizer`` is never reconfigured) and sets and uses its
truncation under one lock. The Rust encode runs in parallel inside the lock and releases the GIL, so the
model forwards of other threads go on meanwhile; only tokenisation itself is serialised.

Long texts. The tokenizer normalises and splits the whole text before it truncates (~220 bytes of RAM per
character: 11 GB for a 50 MB line). A text longer than ``first_cap(max_length)`` characters is cut there
first. The cut is kept only when the first ``max_length`` tokens of the cut text are provably those of the
whole text: tokenizers split text into words (pre-tokenizer) and tokenise each word alone, so only the last
words of the cut text can differ from the whole text's (a word cut in half, a whitespace run that ends
early); every token of an earlier word is exact. When fewer than ``max_length`` tokens are exact
(long words, whitespace runs, a tokenizer without a word splitter) the cap grows 4x and the check
repeats, up to the whole text. A verified cut is then trimmed to the word boundary just past the tokens
needed (checked again), so the truncating encode handles a few words more than it keeps: a pair of long
texts would otherwise get one overflow encoding per combination of the two texts' overflowing windows.
Pairs (cross-encoders, ``longest_first``) also depend on which text of a pair is longer (``_order_pair``).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

__all__ = ["Tokenized", "TextTokenizer", "first_cap"]

CHARS_PER_TOKEN = 16  # first cap per token: English averages 4-5 characters a token, code and URLs more
MIN_CAP = 4096
GROW = 4
UNSURE_WORDS = 2  # the cut text's last words may tokenise differently from the whole text's
CHECK_BATCH = 64  # cut texts checked per encode call: bounds the memory of their untruncated encodings


def first_cap(max_length: int) -> int:
    """Characters of a text handed to the tokenizer at first when it truncates to ``max_length`` tokens."""
    return max(MIN_CAP, CHARS_PER_TOKEN * int(max_length))


class Tokenized:
    """Per-text token ids (special tokens included), token type ids, and the truncation count."""

    __slots__ = ("ids", "type_ids", "lengths", "truncated")

    def __init__(self, ids: list[list[int]], type_ids: list[list[int]] | None, truncated: int):
        self.ids = ids
        self.type_ids = type_ids
        self.lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        self.truncated = truncated


class _Side:
    """One text of the input as handed to the tokenizer: ``text`` (whole, or a prefix of at most ``cap``
    characters), ``exact`` leading tokens known equal to the whole text's, ``total`` tokens of ``text``,
    ``trim_at``: a shorter prefix (character offset) expected to keep the tokens asked for, or None."""

    __slots__ = ("full", "cap", "text", "exact", "total", "trim_at")

    def __init__(self, full: str, cap: int):
        self.full, self.cap, self.text = full, cap, full[:cap]
        self.exact = self.total = 0
        self.trim_at: int | None = None

    @property
    def cut(self) -> bool:
        return len(self.text) < len(self.full)


def _exact_tokens(word_ids: list[int | None]) -> int:
    """Leading tokens that belong to words before the last UNSURE_WORDS words."""
    last = max((w for w in word_ids if w is not None), default=-1)
    n = 0
    for w in word_ids:
        if w is None or w > last - UNSURE_WORDS:
            break
        n += 1
    return n


def _trim_offset(enc: Any, k: int) -> int | None:
    """Where to cut so that the first ``k`` tokens' words stay followed by UNSURE_WORDS whole words: the
    start of the first token of the word after those (None when the text holds no such word)."""
    words = enc.word_ids
    target = words[k - 1] + UNSURE_WORDS + 1
    for i in range(k, len(words)):
        if words[i] is not None and words[i] >= target:
            return enc.offsets[i][0]
    return None


class TextTokenizer:
    """A thread-safe tokenizer for one encoder: a private copy of a fast tokenizer's Rust backend.

    ``__call__`` returns the ids ``tokenizer(texts, truncation=True, max_length=...)`` gives (and
    ``tokenizer(texts, pairs, truncation="longest_first", ...)`` for pairs), from any number of threads.
    """

    def __init__(self, tokenizer: Any):
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(f"encoders: the tokenizer must be a fast (Rust) tokenizer, got {type(tokenizer).__name__}")
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        backend.no_padding()
        backend.no_truncation()
        # transformers sets this per call from the tokenizer's attribute; ours is fixed at load
        backend.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))
        self._backend = backend
        self._side = getattr(tokenizer, "truncation_side", "right")
        self._limit: int | None = None  # the backend's current truncation, changed only under the lock
        self._lock = threading.Lock()

    def __call__(self, texts: list[str], max_length: int | None, *, pairs: list[str] | None = None,
                 type_ids: bool = False) -> Tokenized:
        """Tokenise with special tokens, truncating to ``max_length`` tokens (None: no truncation).

        A text counts as truncated when the tokenizer reports overflowing tokens for it.
        """
        if not texts:
            return Tokenized([], [] if type_ids else None, 0)
        with self._lock:
            # right truncation keeps a prefix, so a prefix of the text suffices; left truncation keeps the end
            # (rare for encoders) and gets the whole text
            if max_length is not None and self._side == "right":
                texts, pairs = self._capped(texts, pairs, int(max_length))
            inputs = list(zip(texts, pairs)) if pairs is not None else texts
            encodings = self._encode(inputs, max_length, special=True)
        ids = [e.ids for e in encodings]
        tids = [e.type_ids for e in encodings] if type_ids else None
        truncated = sum(1 for e in encodings if e.overflowing) if max_length is not None else 0
        return Tokenized(ids, tids, truncated)

    # ------------------------------------------------------------------ under the lock
    def _encode(self, inputs: list, max_length: int | None, *, special: bool) -> list:
        if max_length != self._limit:
            if max_length is None:
                self._backend.no_truncation()
            else:
                self._backend.enable_truncation(int(max_length), stride=0, strategy="longest_first",
                                                direction=self._side)
            self._limit = max_length
        return self._backend.encode_batch(inputs, add_special_tokens=special)

    def _measure(self, sides: list[_Side], k: int) -> None:
        """Set ``exact``, ``total`` and ``trim_at`` (for ``k`` tokens) of each side from an untruncated
        encoding of its text, CHECK_BATCH texts at a time."""
        for s in range(0, len(sides), CHECK_BATCH):
            part = sides[s:s + CHECK_BATCH]
            for side, enc in zip(part, self._encode([x.text for x in part], None, special=False)):
                side.total = len(enc.ids)
                side.exact = _exact_tokens(enc.word_ids) if side.cut else side.total
                side.trim_at = _trim_offset(enc, k) if side.cut and side.exact >= k else None

    def _fit(self, sides: list[_Side], k: int) -> None:
        """Make each cut side hold at least ``k`` exact tokens (growing its cap 4x at a time, up to the whole
        text), then trim it to about ``k`` tokens where the trimmed text still has them."""
        todo = sides
        for x in todo:
            x.text = x.full[:x.cap]
        while todo:
            self._measure(todo, k)
            todo = [x for x in todo if x.cut and x.exact < k]
            for x in todo:
                x.cap *= GROW
                x.text = x.full[:x.cap]
        trim = [x for x in sides if x.trim_at is not None and x.trim_at < len(x.text)]
        kept = [(x.text, x.exact, x.total) for x in trim]
        for x in trim:
            x.text = x.text[:x.trim_at]
        self._measure(trim, k)
        for x, (text, exact, total) in zip(trim, kept):
            if x.exact < k:  # the trimmed text lost exactness (an unusual tokenizer): keep the verified cut
                x.text, x.exact, x.total = text, exact, total

    def _capped(self, texts: list[str], pairs: list[str] | None, max_length: int
                ) -> tuple[list[str], list[str] | None]:
        """The texts (and pairs) to hand to the tokenizer: long ones cut where that changes no token kept."""
        cap = first_cap(max_length)
        if pairs is None:
            long = [_Side(t, cap) for t in texts if len(t) > cap]
            if not long:
                return texts, None
            self._fit(long, max_length)
            cut = iter(long)
            return [next(cut).text if len(t) > cap else t for t in texts], None
        firsts, seconds = list(texts), list(pairs)
        for i, (a, b) in enumerate(zip(texts, pairs)):
            if len(a) > cap or len(b) > cap:  # rare (a text longer than the cap): one pair at a time
                sa, sb = _Side(a, cap), _Side(b, cap)
                self._fit([sa, sb], max_length)
                self._order_pair(sa, sb, max_length)
                firsts[i], seconds[i] = sa.text, sb.text
        return firsts, seconds

    def _order_pair(self, a: _Side, b: _Side, need: int) -> None:
        """``longest_first`` gives an odd last token to the longer text of the pair (the second on a tie), so
        the cut texts must compare as the whole ones do. A cut text has at least its exact tokens: when only
        one side is cut, it gets more exact tokens than the other side has in all. When both are cut their
        whole lengths stay unknown (counting them is the cost the cap avoids): the text with more characters
        is taken as the longer and given the tokens to be so (documented limit: that odd token can go to the
        other text than the uncut tokenisation gives it)."""
        while a.cut or b.cut:
            if a.cut and b.cut:
                grow, k = (a, b.total + 1) if len(a.full) > len(b.full) else (b, a.total)
            else:
                grow, other = (a, b) if a.cut else (b, a)
                k = other.total + 1
            if grow.exact >= k:
                return
            self._fit([grow], max(k, need))
            if grow.cut:
                return
