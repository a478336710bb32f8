"""Evaluation data: BEIR directories, TREC-DL directories, TREC and JSONL run files.

Layouts read (``load_dataset`` detects which):

- BEIR: ``corpus.jsonl`` (``{"_id", "title"?, "text"}``), ``queries.jsonl`` (``{"_id", "text"}``),
  ``qrels/<split>.tsv`` (``query-id<TAB>corpus-id<TAB>score``, an optional header line).
- TREC-DL (as in shared/data/trec-dl/dl19): ``corpus.jsonl``, ``queries.tsv`` (``qid<TAB>query``),
  ``qrels.txt`` (``qid Q0 docid grade``), and first-stage runs ``<name>_top100.jsonl``.

Runs: a TREC run file (``qid Q0 docid rank score tag``) or JSONL lines
``{"qid", "candidates": [{"docid", "score"?, "rank"?}]}`` (candidates in rank order when no score is given).

A document's text is ``title + " " + text`` when it has a title (the BEIR convention). Every parse error
names the file and the 1-based line and says why.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

__all__ = ["Dataset", "load_dataset", "read_run", "write_run", "DataError"]

Run = dict[str, dict[str, float]]  # qid -> {docid: score}, higher is better
Qrels = dict[str, dict[str, int]]  # qid -> {docid: grade}


class DataError(ValueError):
    """A malformed data or run file: the message names the file, the line and the reason."""


@dataclass
class Dataset:
    """An evaluation set.

    Attributes:
        corpus: docid -> text, in file order.
        queries: qid -> text, for the judged queries of the split only, in qrels order.
        qrels: qid -> {docid: grade}.
        runs: name -> path of the first-stage runs shipped with the data (TREC-DL).
        rel_level: the smallest grade counted relevant by binary measures (MRR, Recall): 1 for BEIR, 2 for
            TREC-DL passages (as NIST scores them).
    """
    name: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: Qrels
    runs: dict[str, Path] = field(default_factory=dict)
    rel_level: int = 1
    format: str = "beir"

    def subset(self, max_queries: int | None = None, max_docs: int | None = None) -> "Dataset":
        """A smaller evaluation set, for quick runs.

        Args:
            max_queries: keep the first judged queries (qrels order).
            max_docs: keep the first ``max_docs`` documents of the corpus (file order) plus every document
                judged for the kept queries, in file order. Scores on such a corpus are higher than on the
                whole one (fewer distractors): report them as a subset.
        """
        queries, qrels, corpus = self.queries, self.qrels, self.corpus
        if max_queries is not None and max_queries < len(queries):
            keep = list(queries)[:max_queries]
            queries, qrels = {q: queries[q] for q in keep}, {q: qrels[q] for q in keep}
        if max_docs is not None and max_docs < len(corpus):
            judged = {d for rel in qrels.values() for d in rel}
            corpus = {d: t for i, (d, t) in enumerate(corpus.items()) if i < max_docs or d in judged}
        if queries is self.queries and corpus is self.corpus:
            return self
        return Dataset(self.name, corpus, queries, qrels, self.runs, self.rel_level, self.format)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if line.strip():
                yield i, line


def _json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    for i, line in _lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i}: bad JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{i}: must be a JSON object, got {type(obj).__name__}")
        yield i, obj


def _field(obj: dict, key: str, path: Path, line: int, types: tuple = (str,)) -> Any:
    if key not in obj:
        raise DataError(f"{path}:{line}: missing field {key!r}")
    v = obj[key]
    if str in types and isinstance(v, int) and not isinstance(v, bool):
        v = str(v)  # numeric ids are common in BEIR dumps
    if not isinstance(v, types):
        raise DataError(f"{path}:{line}: field {key!r} must be {'/'.join(t.__name__ for t in types)}, "
                        f"got {type(v).__name__}")
    return v


def read_corpus(path: Path) -> dict[str, str]:
    corpus: dict[str, str] = {}
    for i, obj in _json_lines(path):
        did = _field(obj, "_id", path, i)
        text = _field(obj, "text", path, i)
        title = obj.get("title") or ""
        if not isinstance(title, str):
            raise DataError(f"{path}:{i}: field 'title' must be str, got {type(title).__name__}")
        if did in corpus:
            raise DataError(f"{path}:{i}: duplicate document id {did!r}")
        corpus[did] = f"{title} {text}".strip() if title else text
    return corpus


def read_queries(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if path.suffix == ".tsv":
        for i, line in _lines(path):
            parts = line.split("\t")
            if len(parts) < 2:
                raise DataError(f"{path}:{i}: must be 'qid<TAB>query', got {line[:60]!r}")
            out[parts[0]] = parts[1]
        return out
    for i, obj in _json_lines(path):
        out[_field(obj, "_id", path, i)] = _field(obj, "text", path, i)
    return out


def read_qrels(path: Path) -> Qrels:
    """BEIR TSV (``qid docid grade``, optional header) or TREC (``qid 0|Q0 docid grade``)."""
    qrels: Qrels = {}
    for n, (i, line) in enumerate(_lines(path)):
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) == 4:
            qid, _, did, grade = parts
        elif len(parts) == 3:
            qid, did, grade = parts
        else:
            raise DataError(f"{path}:{i}: must have 3 (qid docid grade) or 4 (qid Q0 docid grade) fields, "
                            f"got {len(parts)}")
        try:
            g = int(float(grade))
        except ValueError:
            if n == 0:
                continue  # the header line of a BEIR qrels file
            raise DataError(f"{path}:{i}: grade must be an integer, got {grade!r}") from None
        qrels.setdefault(qid.strip(), {})[did.strip()] = g
    if not qrels:
        raise DataError(f"{path}: no judgements found")
    return qrels


def read_run(path: str | os.PathLike) -> Run:
    """A TREC run file or a JSONL run (module docstring) -> qid -> {docid: score}.

    JSONL candidates without a score get ``-rank`` (or minus their position) so the order is kept.
    """
    path = Path(path)
    first = next(_lines(path), (0, ""))[1].lstrip()
    run: Run = {}
    if first.startswith("{"):
        for i, obj in _json_lines(path):
            qid = _field(obj, "qid", path, i)
            cands = _field(obj, "candidates", path, i, (list,))
            docs = run.setdefault(qid, {})
            for j, c in enumerate(cands):
                if not isinstance(c, dict):
                    raise DataError(f"{path}:{i}: candidates[{j}] must be an object, got {type(c).__name__}")
                did = _field(c, "docid", path, i) if "docid" in c else _field(c, "doc_id", path, i)
                if "score" in c:
                    score = _field(c, "score", path, i, (float, int))
                else:
                    score = -float(c.get("rank", j + 1))
                docs[did] = float(score)
        return run
    for i, line in _lines(path):
        parts = line.split()
        if len(parts) != 6:
            raise DataError(f"{path}:{i}: a TREC run line must have 6 fields (qid Q0 docid rank score tag), "
                            f"got {len(parts)}")
        try:
            score = float(parts[4])
        except ValueError:
            raise DataError(f"{path}:{i}: score must be a number, got {parts[4]!r}") from None
        run.setdefault(parts[0], {})[parts[2]] = score
    return run


def write_run(run: Run, path: str | os.PathLike, tag: str = "fusedscore") -> None:
    """Write a TREC run file, each query's documents by descending score."""
    with open(path, "w", encoding="utf-8") as f:
        for qid, docs in run.items():
            for r, (did, s) in enumerate(sorted(docs.items(), key=lambda x: -x[1]), 1):
                f.write(f"{qid} Q0 {did} {r} {s:.6f} {tag}\n")


def load_dataset(directory: str | os.PathLike, split: str = "test") -> Dataset:
    """Load a BEIR or TREC-DL directory (module docstring); only judged queries are kept.

    Raises:
        FileNotFoundError: a required file is missing (the message lists what was looked for).
        DataError: a malformed line (file, line, reason), or a judged query with no text.
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"eval: data must be a directory, got {str(d)!r}")
    if (d / "qrels" / f"{split}.tsv").is_file():
        fmt, qrels_path = "beir", d / "qrels" / f"{split}.tsv"
        q_path, rel_level = d / "queries.jsonl", 1
    elif (d / "qrels.txt").is_file():
        fmt, qrels_path = "trec-dl", d / "qrels.txt"
        q_path, rel_level = d / "queries.tsv", 2
    else:
        raise FileNotFoundError(f"eval: {d} is neither a BEIR directory (qrels/{split}.tsv) nor a TREC-DL "
                                f"directory (qrels.txt)")
    for p in (d / "corpus.jsonl", q_path):
        if not p.is_file():
            raise FileNotFoundError(f"eval: {d} must contain {p.name} ({fmt} layout), not found")
    qrels = read_qrels(qrels_path)
    all_q = read_queries(q_path)
    missing = [q for q in qrels if q not in all_q]
    if missing:
        raise DataError(f"{qrels_path}: judged query {missing[0]!r} has no text in {q_path.name} "
                        f"({len(missing)} such queries)")
    runs = {p.name[: -len("_top100.jsonl")] if p.name.endswith("_top100.jsonl") else p.stem: p
            for p in sorted(d.glob("*.jsonl")) if p.name not in ("corpus.jsonl", "queries.jsonl")}
    return Dataset(d.name, read_corpus(d / "corpus.jsonl"), {q: all_q[q] for q in qrels}, qrels, runs, rel_level, fmt)
