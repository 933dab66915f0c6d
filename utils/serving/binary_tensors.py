"""The Open Inference Protocol's binary tensor data extension, as Triton defines it: decode a request, encode a reply.

A body may hold a JSON header followed by raw tensor bytes; the header ``Inference-Header-Content-Length`` gives the
JSON header's length. An input carries ``parameters.binary_data_size`` (its bytes, in input order) in place of
``data``. An output is sent as bytes when the request's ``parameters.binary_data_output`` is true or the output's
requested ``parameters.binary_data`` is; its JSON then carries ``parameters.binary_data_size`` instead of ``data``.
Numbers are little-endian, row-major; a BYTES element is a 4-byte little-endian length and the bytes (UTF-8 here).
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from utils.scoring import InputError

#: The HTTP header naming the length of the JSON header in a body that also holds binary tensor data.
HEADER_LENGTH = "Inference-Header-Content-Length"
#: numpy's little-endian type of each fixed-size Open Inference Protocol datatype.
NUMPY_TYPES = {
    "BOOL": "?",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
_LENGTH = struct.Struct("<I")


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary tensor data of a request body (all JSON when there is no length header)."""
    if header_length is None:
        return body, b""
    if not header_length.strip().isdecimal() or int(header_length) > len(body):
        raise InputError(
            f"{HEADER_LENGTH} is {header_length!r}; expected the JSON header's length in bytes, "
            f"at most the body's {len(body)} bytes",
            field=HEADER_LENGTH,
        )
    return body[: int(header_length)], body[int(header_length) :]


def _binary_size(tensor: dict) -> int | None:
    parameters = tensor.get("parameters")
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is None:
        return None
    name = str(tensor.get("name"))
    if type(size) is not int or size < 0:
        raise InputError(f"input {name!r}: binary_data_size must be a byte count, got {size!r}", field=name)
    if "data" in tensor:
        raise InputError(f"input {name!r} has both data and binary_data_size; send one of them", field=name)
    return size


def attach_binary_inputs(header: Any, binary: bytes) -> Any:
    """``header`` (the parsed JSON) with each binary input's bytes decoded into its ``data`` list."""
    inputs = header.get("inputs") if isinstance(header, dict) else None
    offset = 0
    for tensor in inputs if isinstance(inputs, list) else []:
        size = _binary_size(tensor) if isinstance(tensor, dict) else None
        if size is None:
            continue
        name = str(tensor.get("name"))
        if offset + size > len(binary):
            raise InputError(
                f"input {name!r} declares {size} bytes of binary data but the body holds only "
                f"{len(binary) - offset} more after the JSON header",
                field=name,
            )
        tensor["data"] = decode_tensor(name, tensor.get("datatype"), binary[offset : offset + size])
        offset += size
    if offset != len(binary):
        raise InputError(
            f"the body holds {len(binary)} bytes of binary data after the JSON header, "
            f"but its inputs declare binary_data_size for {offset}",
            field=HEADER_LENGTH,
        )
    return header


def decode_tensor(name: str, datatype: Any, raw: bytes) -> list:
    """The elements of one tensor's raw bytes, flattened in row-major order."""
    if datatype == "BYTES":
        return _decode_bytes(name, raw)
    if not (isinstance(datatype, str) and datatype in NUMPY_TYPES):
        known = ", ".join(["BYTES", *NUMPY_TYPES])
        raise InputError(
            f"input {name!r}: datatype {datatype!r} cannot be sent as binary data; use {known}", field=name
        )
    dtype = np.dtype(NUMPY_TYPES[datatype])
    if len(raw) % dtype.itemsize:
        raise InputError(
            f"input {name!r}: {len(raw)} bytes is not a whole number of {datatype} elements ({dtype.itemsize} bytes)",
            field=name,
        )
    return np.frombuffer(raw, dtype=dtype).tolist()


def _decode_bytes(name: str, raw: bytes) -> list[str]:
    elements, offset = [], 0
    while offset < len(raw):
        row = len(elements)
        if offset + _LENGTH.size > len(raw):
            raise InputError(f"input {name!r}: element {row} is cut short in its 4-byte length", field=name, row=row)
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > len(raw):
            raise InputError(
                f"input {name!r}: element {row} declares {length} bytes, only {len(raw) - offset} remain",
                field=name,
                row=row,
            )
        try:
            elements.append(raw[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise InputError(f"input {name!r}: element {row} is not UTF-8 text", field=name, row=row) from None
        offset += length
    return elements


def encode_tensor(datatype: str, data: list) -> bytes:
    """One tensor's flattened elements as raw bytes."""
    if datatype == "BYTES":
        encoded = [str(item).encode("utf-8") for item in data]
        return b"".join(_LENGTH.pack(len(item)) + item for item in encoded)
    return np.asarray(data, dtype=NUMPY_TYPES[datatype]).tobytes()


def binary_outputs(parameters: dict | None, outputs: list[dict] | None, available: list[str]) -> dict[str, bool]:
    """The outputs to return, in the server's order, each with whether it goes as binary data."""
    default = _flag(parameters, "binary_data_output", False, "parameters")
    if not outputs:
        return dict.fromkeys(available, default)
    wanted: dict[str, bool] = {}
    for at, output in enumerate(outputs):
        name = output.get("name")
        if name not in available:
            raise InputError(
                f"outputs[{at}]: unknown output {name!r}; expected one of {', '.join(available)}", field="outputs"
            )
        if isinstance(output.get("parameters"), dict) and "classification" in output["parameters"]:
            raise InputError(f"outputs[{at}]: the classification extension is not supported", field="outputs")
        wanted[name] = _flag(output.get("parameters"), "binary_data", default, f"outputs[{at}].parameters")
    return {name: wanted[name] for name in available if name in wanted}


def _flag(parameters: Any, name: str, default: bool, where: str) -> bool:
    if parameters is None:
        return default
    if not isinstance(parameters, dict):
        raise InputError(f"{where} must be an object, got {type(parameters).__name__}", field=where)
    value = parameters.get(name, default)
    if not isinstance(value, bool):
        raise InputError(f"{where}.{name} must be true or false, got {value!r}", field=f"{where}.{name}")
    return value


def encode_response(response: dict, binary: dict[str, bool]) -> tuple[bytes, int | None]:
    """The reply body for ``response`` (JSON as a dict) and its JSON header's length when it holds binary data.

    Only the outputs named in ``binary`` are kept; those marked true go as bytes after the JSON header."""
    chunks, outputs = [], []
    for output in response["outputs"]:
        if output["name"] not in binary:
            continue
        if binary[output["name"]]:
            raw = encode_tensor(output["datatype"], output.pop("data"))
            output["parameters"] = {**(output.get("parameters") or {}), "binary_data_size": len(raw)}
            chunks.append(raw)
        outputs.append(output)
    header = json.dumps({**response, "outputs": outputs}, separators=(",", ":")).encode()
    return header + b"".join(chunks), (len(header) if chunks else None)
