"""The batches feature's repository: every SQL statement over batches, records, parse chunks
and result caches, as named functions. Services and tasks call these; nothing else in the
feature builds a query.

- ``batches``: batch rows, the status compare-and-set, counters;
- ``records``: bulk load, dedupe, chunk claims, result writes, aggregates, export pages;
- ``chunks``: the byte ranges of a chunked parse;
- ``caches``: account and global result caches;
- ``predicates``: the "unverified" and "due" row predicates, written once.
"""

from . import batches, caches, chunks, predicates, records

__all__ = ["batches", "caches", "chunks", "predicates", "records"]
