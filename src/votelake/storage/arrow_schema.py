"""Convert the catalog's Spark schemas to Arrow schemas (what delta-rs takes)."""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import types as T

# Spark's TimestampType is an instant; Delta's ``timestamp`` is UTC-adjusted microseconds.
_SIMPLE: dict[type, pa.DataType] = {
    T.StringType: pa.string(),
    T.ByteType: pa.int8(),
    T.ShortType: pa.int16(),
    T.IntegerType: pa.int32(),
    T.LongType: pa.int64(),
    T.FloatType: pa.float32(),
    T.DoubleType: pa.float64(),
    T.BooleanType: pa.bool_(),
    T.DateType: pa.date32(),
    T.TimestampType: pa.timestamp("us", tz="UTC"),
    T.TimestampNTZType: pa.timestamp("us"),
    T.BinaryType: pa.binary(),
}


def to_arrow_type(dtype: T.DataType) -> pa.DataType:
    """Map one Spark data type to its Arrow equivalent.

    Args:
        dtype: the Spark type.

    Returns:
        The Arrow type.

    Raises:
        TypeError: the type has no mapping here.
    """
    if type(dtype) in _SIMPLE:
        return _SIMPLE[type(dtype)]
    if isinstance(dtype, T.DecimalType):
        return pa.decimal128(dtype.precision, dtype.scale)
    if isinstance(dtype, T.ArrayType):
        return pa.list_(pa.field("element", to_arrow_type(dtype.elementType), nullable=dtype.containsNull))
    if isinstance(dtype, T.MapType):
        return pa.map_(to_arrow_type(dtype.keyType), pa.field("value", to_arrow_type(dtype.valueType), dtype.valueContainsNull))
    if isinstance(dtype, T.StructType):
        return pa.struct([to_arrow_field(f) for f in dtype.fields])
    raise TypeError(f"no Arrow mapping for Spark type {dtype.simpleString()}")


def to_arrow_field(field: T.StructField) -> pa.Field:
    """Map one Spark field (name, type, nullability) to an Arrow field.

    Args:
        field: the Spark field.

    Returns:
        The Arrow field.
    """
    return pa.field(field.name, to_arrow_type(field.dataType), nullable=field.nullable)


def to_arrow_schema(schema: T.StructType) -> pa.Schema:
    """Map a Spark schema to an Arrow schema, keeping column order and nullability.

    Args:
        schema: the Spark schema.

    Returns:
        The Arrow schema.
    """
    return pa.schema([to_arrow_field(f) for f in schema.fields])
