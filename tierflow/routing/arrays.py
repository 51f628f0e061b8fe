"""numpy arrays inside a JSON document, without pickle.

An array is `{"dtype": "<f8", "shape": [n], "base64": "…"}`: the raw little-endian
bytes of one of a few numeric dtypes. Loading never runs code: the bytes are read with
`numpy.frombuffer` and checked against the declared shape.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from tierflow.errors import TierflowError

DTYPES = {"<f8": np.float64, "<f4": np.float32, "<i8": np.int64}


def encode(array: npt.NDArray[Any]) -> dict[str, Any]:
    data = np.ascontiguousarray(array)
    dtype = data.dtype.newbyteorder("<").str
    if dtype not in DTYPES:
        raise TierflowError(f"can't store an array of dtype {data.dtype} (only {sorted(DTYPES)})")
    return {
        "dtype": dtype,
        "shape": list(data.shape),
        "base64": base64.b64encode(data.astype(dtype, copy=False).tobytes()).decode("ascii"),
    }


def decode(document: Mapping[str, Any], where: str) -> npt.NDArray[Any]:
    try:
        dtype = DTYPES[str(document["dtype"])]
        shape = tuple(int(n) for n in document["shape"])
        raw = base64.b64decode(str(document["base64"]), validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise TierflowError(f"{where}: not a stored array ({error})") from None
    array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
    if array.size != int(np.prod(shape)):
        raise TierflowError(f"{where}: {array.size} values for shape {list(shape)}")
    return array.reshape(shape).astype(dtype)
