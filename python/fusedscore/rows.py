"""Rerank rows: the one home of the row schema, the model of a rerank job and the scoring of rows, shared by
``fusedscore rerank`` (``cli_rerank``) and its Ray runner (``integrations.ray``), so that both write the same
output lines.

A row is a query with its candidates, in either form:

- ``{"query": "...", "documents": ["...", ...]}``: results ``{"corpus_id": i, "score": s}`` (``i`` indexes
  ``documents``);
- ``{"qid": ..., "query": "...", "candidates": [{"doc_id": ..., "text": "..."}, ...]}``: results
  ``{"doc_id": ..., "score": s}``.

Every other field passes through; results are sorted best first, and a score of ``-inf`` (a document with no
scoreable token) is ``None``: JSON has no infinity.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterator

__all__ = ["BadLine", "SetupError", "parse_row", "iter_rows", "load_model", "rerank_rows", "score_lines"]


class BadLine(ValueError):
    """A line of the input that cannot be reranked: ``lineno`` (1-based) and ``why``."""

    def __init__(self, lineno: int, why: str):
        super().__init__(f"line {lineno}: {why}")
        self.lineno, self.why = lineno, why


class SetupError(RuntimeError):
    """A rerank job's scorer could not start (model, arguments or cluster): reported before any line is written
    (``fusedscore rerank`` exits 2)."""


def parse_row(obj: Any, lineno: int = 0) -> dict[str, Any]:
    """Validate one input object. Returns it with ``_texts`` (the candidate texts) and ``_ids`` (the doc ids, or
    None for the ``documents`` form) added. Raises ``BadLine`` naming the field and the problem."""
    if not isinstance(obj, dict):
        raise BadLine(lineno, f"a line must be a JSON object, got {type(obj).__name__}")
    if "query" not in obj:
        raise BadLine(lineno, "missing field 'query'")
    if not isinstance(obj["query"], str):
        raise BadLine(lineno, f"'query' must be a string, got {type(obj['query']).__name__}")
    has_docs, has_cands = "documents" in obj, "candidates" in obj
    if has_docs == has_cands:
        raise BadLine(lineno, "needs exactly one of the fields 'documents' (list of strings) or 'candidates' "
                              "(list of {doc_id, text})" + (", got both" if has_docs else ", got neither"))
    row = dict(obj)
    if has_docs:
        docs = obj["documents"]
        if not isinstance(docs, list):
            raise BadLine(lineno, f"'documents' must be a list of strings, got {type(docs).__name__}")
        for i, d in enumerate(docs):
            if not isinstance(d, str):
                raise BadLine(lineno, f"documents[{i}] must be a string, got {type(d).__name__}")
        row["_texts"], row["_ids"] = docs, None
        return row
    cands = obj["candidates"]
    if not isinstance(cands, list):
        raise BadLine(lineno, f"'candidates' must be a list of {{doc_id, text}} objects, got {type(cands).__name__}")
    texts, ids = [], []
    for i, c in enumerate(cands):
        if not isinstance(c, dict):
            raise BadLine(lineno, f"candidates[{i}] must be an object {{doc_id, text}}, got {type(c).__name__}")
        for field in ("doc_id", "text"):
            if field not in c:
                raise BadLine(lineno, f"candidates[{i}] is missing field '{field}'")
        if not isinstance(c["text"], str):
            raise BadLine(lineno, f"candidates[{i}].text must be a string, got {type(c['text']).__name__}")
        texts.append(c["text"])
        ids.append(c["doc_id"])
    row["_texts"], row["_ids"] = texts, ids
    return row


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise ValueError(f"{text} is out of the float range")
    return x


def _has_surrogate(text: str) -> int:
    """Index of the first lone surrogate in ``text``, -1 if none (a str holds one only from a JSON escape)."""
    try:
        text.encode("utf-8")
        return -1
    except UnicodeEncodeError as e:
        return e.start


def _lone_surrogate(obj: Any) -> str | None:
    """Where in a parsed JSON value a string (or a field name) holds a lone surrogate, e.g. ``documents[2]``,
    with the surrogate and its position; None when every string is valid Unicode text."""
    stack: list[tuple[str, Any]] = [("", obj)]  # iterative: the value may be nested thousands deep
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            i = _has_surrogate(v)
            if i >= 0:
                return f"{path or 'the line'} must be valid Unicode text, got a lone surrogate \\u{ord(v[i]):04x} " \
                       f"at character {i + 1} (half of a UTF-16 pair, which UTF-8 cannot hold)"
        elif isinstance(v, dict):
            for k in v:
                i = _has_surrogate(k)
                if i >= 0:
                    return f"a field name{' in ' + path if path else ''} must be valid Unicode text, got a lone " \
                           f"surrogate \\u{ord(k[i]):04x} in {k!r} (half of a UTF-16 pair, which UTF-8 cannot hold)"
            stack.extend((f"{path}.{k}" if path else k, x) for k, x in reversed(v.items()))
        elif isinstance(v, list):
            stack.extend((f"{path}[{j}]", v[j]) for j in reversed(range(len(v))))
    return None


def iter_rows(lines: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """(lineno, validated row) for each non-blank line; raises ``BadLine`` at the first bad one.

    ``lines`` holds str, or bytes (a file opened ``"rb"``) decoded here one line at a time as strict UTF-8:
    a text-mode file decodes ahead in chunks, so its UnicodeDecodeError has no usable line number.
    """
    it = iter(lines)
    lineno = 0
    while True:
        lineno += 1
        try:
            line = next(it)
        except StopIteration:
            return
        except OSError as e:  # the file itself failed (I/O error, network filesystem): where it stopped
            raise BadLine(lineno, f"cannot be read ({type(e).__name__}: {e})") from e
        decoded = isinstance(line, bytes)
        if decoded:
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise BadLine(lineno, f"must be UTF-8, got the byte 0x{line[e.start]:02x} at column "
                                      f"{e.start + 1}") from None
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_constant=_no_constant, parse_float=_finite_float)
        except json.JSONDecodeError as e:
            raise BadLine(lineno, f"bad JSON ({e.msg} at column {e.colno})") from None
        except ValueError as e:  # NaN / Infinity: Python reads them, the output (strict JSON) could not hold them
            raise BadLine(lineno, f"bad JSON ({e})") from None
        except RecursionError:  # json's recursive parser on thousands of nested brackets
            raise BadLine(lineno, "bad JSON (nested too deeply)") from None
        row = parse_row(obj, lineno)
        # in a line decoded here (strict UTF-8) only a \uD800-\uDFFF escape yields a surrogate: most skip the walk
        if "\\u" in line or (not decoded and _has_surrogate(line) >= 0):
            why = _lone_surrogate(obj)
            if why is not None:
                raise BadLine(lineno, why)
        yield lineno, row


def load_model(model_dir: str, *, device: Any = None, label_index: int | None = None,
               max_length: int | None = None) -> Any:
    """``fusedscore.encoders.load(model_dir, device=device)``; ``label_index`` (the logit column a multi-label
    cross-encoder ranks by) is passed to a cross-encoder only, the one format that has such columns;
    ``max_length`` (the encoder's truncation length in tokens, None: the model's) to any encoder.

    Raises:
        ValueError: ``label_index`` for a model that is not a cross-encoder, or out of range; the loaders' errors.
    """
    kw: dict[str, Any] = {} if max_length is None else {"max_length": max_length}
    if label_index is None:
        from .encoders import load

        return load(model_dir, device=device, **kw)
    from .encoders import detect_format, load

    fmt = detect_format(model_dir)
    if fmt != "cross":
        raise ValueError(f"load_model: label_index must be None for a {fmt} model (it picks a cross-encoder's "
                         f"logit column), got {label_index}")
    return load(model_dir, device=device, label_index=label_index, **kw)


def _score_value(s: float) -> float | None:
    return s if math.isfinite(s) else None


def rerank_rows(reranker: Any, rows: list[dict[str, Any]], *, top_k: int | None = None, batch_size: int = 32,
                return_documents: bool = False) -> list[dict[str, Any]]:
    """Rerank a batch of input rows (dicts in either input form) with one ``rerank_batch`` call.

    This is the unit of work a distributed runner maps over batches of rows.
    Returns the output rows, in order.  Raises ``BadLine`` (lineno = position in ``rows``, 1-based) for a bad row.
    """
    parsed = [r if "_texts" in r else parse_row(r, i + 1) for i, r in enumerate(rows)]
    ranked = reranker.rerank_batch([r["query"] for r in parsed], [r["_texts"] for r in parsed], top_k=top_k,
                                   batch_size=batch_size)
    out = []
    for r, res in zip(parsed, ranked):
        o = {k: v for k, v in r.items() if k not in ("documents", "candidates", "_texts", "_ids")}
        if r["_ids"] is None:
            o["results"] = [dict({"corpus_id": x["corpus_id"], "score": _score_value(x["score"])},
                                 **({"text": r["_texts"][x["corpus_id"]]} if return_documents else {}))
                            for x in res]
        else:
            o["results"] = [dict({"doc_id": r["_ids"][x["corpus_id"]], "score": _score_value(x["score"])},
                                 **({"text": r["_texts"][x["corpus_id"]]} if return_documents else {}))
                            for x in res]
        out.append(o)
    return out


def score_lines(reranker: Any, rows: list[dict[str, Any]], *, top_k: int | None = None, batch_size: int = 32,
                return_documents: bool = False) -> tuple[list[str], int]:
    """``rerank_rows`` as the output JSON lines (no newline), and how many inputs the encoders truncated
    (``reranker.last_truncated``, 0 when the reranker does not count). The local run and the Ray workers
    both write through this, so their files are identical."""
    out = rerank_rows(reranker, rows, top_k=top_k, batch_size=batch_size, return_documents=return_documents)
    return ([json.dumps(o, ensure_ascii=False, allow_nan=False) for o in out],
            int(getattr(reranker, "last_truncated", 0)))
