"""The packed features: a record's 20 inputs of the credit contract as one fixed-width binary row.

A payload or feedback record whose inputs are in the typed columns (:func:`utils.datamart.records.in_typed_columns`)
also stores them packed in ``packed_features`` (revision 0007), so that a window's inputs are read as one column
rather than 20 (:mod:`utils.datamart.columnar`). The row holds the fields in the contract's order
(:data:`utils.data.FEATURES`), with no padding:

- a category as a signed byte, the index of its value in the contract's domain (:data:`utils.data.CATEGORIES`),
  -1 for a value outside it: the code the window's categoricals take;
- a number as a little-endian 32-bit signed integer.

That is 41 bytes for the credit contract. A record with a number outside the 32-bit range stores no packed row
(NULL), nor does a record stored before revision 0007: the window's read takes their inputs from the typed
columns. :func:`pack` packs a row with :data:`ROW`; :data:`ROW_DTYPE`, the numpy structured type of the same
bytes, reads many at once (:mod:`utils.datamart.arrow_reader`, which is told its fields by :func:`unpacking`).

The layout is the contract's: a change of its fields, their order or a domain must come with a revision that
clears (or rewrites) the stored rows.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from operator import itemgetter

import numpy as np

from utils.data import CATEGORIES, FEATURES

#: The struct of one row: a signed byte per category, a little-endian 32-bit integer per number, no padding.
ROW = struct.Struct("<" + "".join("b" if name in CATEGORIES else "i" for name in FEATURES))
#: The numpy structured type of the same row (numpy packs a structured type's fields without alignment).
ROW_DTYPE = np.dtype([(name, "i1" if name in CATEGORIES else "<i4") for name in FEATURES])

#: Each field's codes (value to index in its domain), None for a number.
_CODES = tuple(
    {value: code for code, value in enumerate(CATEGORIES[name])} if name in CATEGORIES else None for name in FEATURES
)
#: A record's inputs of the credit contract, in its order.
FIELD_VALUES = itemgetter(*FEATURES)


def pack(inputs: Mapping) -> bytes | None:
    """The packed row of a record's inputs of the credit contract (text categories, integer numbers), or None when
    a number does not fit in 32 bits."""
    values = FIELD_VALUES(inputs)
    try:
        return ROW.pack(*[value if codes is None else codes.get(value, -1) for codes, value in zip(_CODES, values)])
    except struct.error:
        return None


def unpacking() -> list[list[str]]:
    """The row's fields as :func:`utils.datamart.arrow_reader.typed_batch` takes them (JSON-able): name and numpy
    type of each, in order (``i1``: a category's code)."""
    return [[name, ROW_DTYPE.fields[name][0].str] for name in ROW_DTYPE.names]
