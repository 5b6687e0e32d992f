"""The size of a new B-tree index as CREATE INDEX builds it, from the table's row count and
pg_stats (the column widths, distinct values, nulls).

HypoPG's estimate (hypopg_relation_size) knows neither deduplication nor the real width of
a numeric: on TPC-H SF1 it puts lineitem (l_orderkey) at 150 MB (74 MB built) and
(l_shipdate, l_suppkey) INCLUDE (l_discount, l_extendedprice, l_quantity) at 665 MB (282 MB
built). What recommend() reports and the storage budget counts is what the disk will hold.

The model follows nbtsort.c: leaf pages filled to 90% (the default fillfactor) with tuples
of an 8-byte header and the key and INCLUDE values, MAXALIGNed, plus a 4-byte line
pointer; where every key column can be deduplicated (its operator class has equalimage)
and there is no INCLUDE column, the rows of one key value share posting-list tuples of
at most a tenth of a page, 6 bytes per row; the inner levels add a page per leaf
page's worth of downlinks.
"""
from __future__ import annotations

import math

from .candidates import Candidate
from .catalog import Table
from .params import ValueSource
from .plans import Relation

PAGE = 8192
USABLE = PAGE - 24 - 16               # page header, btree special space
LEAF_FILL = 0.90                      # BTREE_DEFAULT_FILLFACTOR
HEADER = 8                            # IndexTupleData: heap TID and t_info
LINE_POINTER = 4                      # ItemIdData
TID = 6                               # a posting-list entry
POSTING_MAX = PAGE // 10 - LINE_POINTER  # nbtsort.c: a posting-list tuple takes at most 10% of a page


def _maxalign(n: float) -> float:
    return math.ceil(n / 8) * 8


def btree_bytes(rows: float, key_width: float, include_width: float, distinct: float | None) -> int:
    """Bytes of a B-tree over `rows` entries: key values `key_width` bytes wide (nulls
    bitmap included) of `distinct` values when every key column deduplicates (None: no
    deduplication), INCLUDE values `include_width` bytes wide."""
    rows = max(rows, 1.0)
    if distinct and not include_width and rows / distinct >= 2:
        per_key = rows / distinct
        per_tuple = max((POSTING_MAX - HEADER - key_width) // TID, 2)
        tuples = distinct * math.ceil(per_key / per_tuple)
        leaf_bytes = tuples * (_maxalign(HEADER + key_width) + LINE_POINTER) + rows * TID + tuples * 4
    else:
        leaf_bytes = rows * (_maxalign(HEADER + key_width + include_width) + LINE_POINTER)
    leaf_pages = math.ceil(leaf_bytes / (USABLE * LEAF_FILL))
    downlinks = USABLE // (_maxalign(HEADER + key_width) + LINE_POINTER)
    inner_pages = 0
    level = leaf_pages
    while level > 1:
        level = math.ceil(level / downlinks)
        inner_pages += level
    return int((1 + leaf_pages + inner_pages) * PAGE)        # the metapage first


def estimate(c: Candidate, t: Table, values: ValueSource, share: float = 1.0) -> int | None:
    """Candidate c's size on table t (a share of its rows for a partial index), or None where
    the statistics do not tell: the table never analyzed, a column without pg_stats."""
    if t.reltuples <= 0:
        return None
    rows = t.reltuples * share
    rel = Relation(t.schema, t.name)

    def width(column: str) -> tuple[float, float, float] | None:
        """(bytes, distinct values, null fraction) of a column."""
        col = t.columns.get(column)
        st = values.stats(rel, column)
        if col is None or st is None or not st.avg_width:
            return None
        distinct = st.n_distinct if st.n_distinct > 0 else -st.n_distinct * t.reltuples
        return st.avg_width, distinct, st.null_frac

    keys = [width(k.column) for k in c.keys]
    include = [width(col) for col in c.include]
    if any(w is None for w in keys + include):
        return None
    nulls = 1 if any(w[2] > 0 for w in keys + include) else 0
    dedup = all(k.func is None and t.columns[k.column].dedup for k in c.keys)
    distinct = None
    if dedup:
        distinct = min(math.prod(max(w[1], 1.0) for w in keys), rows)
    return btree_bytes(rows, sum(w[0] for w in keys) + nulls, sum(w[0] for w in include), distinct)
