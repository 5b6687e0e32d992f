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

The values are laid out as index_form_tuple() lays them: a fixed-length value aligned to
its type's alignment, a short varlena (under 127 bytes) packed unaligned, and the null
bitmap, where a row has a null, moving the values 8 bytes on. pg_stats.avg_width is the
mean width rounded down: half a byte goes back per varlena but char(n), padded to one
width. The padding matters on TPC-H: lineitem (l_shipdate, l_suppkey) INCLUDE
(l_discount, l_extendedprice, l_partkey) has its int4 after two numerics averaging 13.5
bytes, and most of its tuples take 40 bytes where the widths alone sum to 32 (270 MB
built, 230 MB by the sum).
"""
from __future__ import annotations

import math

from .candidates import Candidate
from .catalog import Column, Table
from .params import ValueSource
from .plans import Relation

PAGE = 8192
USABLE = PAGE - 24 - 16               # page header, btree special space
LEAF_FILL = 90                        # BTREE_DEFAULT_FILLFACTOR: a page is full with 10% of it free
INNER_FILL = 70                       # BTREE_NONLEAF_FILLFACTOR
HEADER = 8                            # IndexTupleData: heap TID and t_info
LINE_POINTER = 4                      # ItemIdData
TID = 6                               # a posting-list entry
NULL_BITMAP = 8                       # IndexAttributeBitMapData, MAXALIGNed after the header
SHORT_VARLENA = 127                   # a varlena this short is stored with a 1-byte header, unaligned
POSTING_MAX = PAGE // 10 - LINE_POINTER  # nbtsort.c: a posting-list tuple takes at most 10% of a page


def _maxalign(n: float) -> float:
    return math.ceil(n / 8) * 8


def downlinks(key_width: float) -> int:
    """Downlinks an inner page holds as CREATE INDEX fills it, for keys `key_width` bytes wide."""
    return int((USABLE - PAGE * (100 - INNER_FILL) // 100) // (_maxalign(HEADER + key_width) + LINE_POINTER))


def btree_bytes(rows: float, key_width: float, include_width: float, distinct: float | None) -> int:
    """Bytes of a B-tree over `rows` entries: key values `key_width` bytes wide (nulls
    bitmap included) of `distinct` values when every key column deduplicates (None: no
    deduplication), INCLUDE values `include_width` bytes wide."""
    rows = max(rows, 1.0)
    pivot = _maxalign(HEADER + key_width) + LINE_POINTER       # a high key, a downlink
    space = USABLE - PAGE * (100 - LEAF_FILL) // 100 - pivot  # what a leaf page's tuples fill
    if distinct and not include_width and rows / distinct >= 2:
        per_key = rows / distinct
        per_tuple = max((POSTING_MAX - HEADER - key_width) // TID, 2)
        tuples = distinct * math.ceil(per_key / per_tuple)
        leaf_pages = math.ceil((tuples * pivot + rows * TID + tuples * 4) / space)
    else:
        leaf_pages = math.ceil(rows / max(space // (_maxalign(HEADER + key_width + include_width) + LINE_POINTER), 1))
    inner_pages = 0
    level = leaf_pages
    while level > 1:
        level = math.ceil(level / downlinks(key_width))
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
    dedup = all(k.func is None and t.columns[k.column].dedup for k in c.keys)
    distinct = None
    if dedup:
        distinct = min(math.prod(max(w[1], 1.0) for w in keys), rows)
    key_end = _laid_out(HEADER, [(w, t.columns[k.column]) for w, k in zip(keys, c.keys)])
    end = _laid_out(key_end, [(w, t.columns[col]) for w, col in zip(include, c.include)])
    nulls = (1.0 - math.prod(1.0 - w[2] for w in keys + include)) * NULL_BITMAP
    return btree_bytes(rows, key_end - HEADER + nulls, end - key_end, distinct)


def _laid_out(offset: float, values: list[tuple[tuple[float, float, float], Column]]) -> float:
    """Where values of (width, distinct, null fraction) of these columns end in an index
    tuple when they start at `offset` (index_form_tuple: see above)."""
    for (avg, _, null_frac), col in values:
        wide = col.length if col.length > 0 else avg if col.type.startswith("character(") else avg + 0.5
        if col.length > 0 or wide >= SHORT_VARLENA:
            offset = math.ceil(offset / col.align) * col.align
        offset += (1.0 - null_frac) * wide
    return offset
