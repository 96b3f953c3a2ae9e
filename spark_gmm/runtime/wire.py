"""Framed, authenticated messages between the driver and long-running tasks, without pickle.

A message is a kind, a small JSON-able ``meta`` dict and a list of values, each a
:class:`~spark_gmm.kernels.GaussianParameters`,
:class:`~spark_gmm.kernels.SufficientStatistics`, one of the row samples of
:mod:`spark_gmm.kernels.sampling`, :class:`~spark_gmm.kernels.kmeans.ClusterSums` or a pass
request (:data:`.requests.REQUEST_TYPES`). On the wire::

    b"GMM1" | header length (u32, big-endian) | header (JSON) | payload (raw array bytes)

The header names each value's type and fields; array fields point into the payload by
dtype, shape and offset, tuple fields list their items (arrays, scalars or nested values).
Only the value types above and float64/int64 arrays are accepted: nothing received can run
code, whatever a peer sends.

A connection starts with a challenge: the driver sends a random nonce and the task answers
with HMAC-SHA256(secret, nonce), the secret travelling to the tasks inside the Spark job's
closure (as PySpark's own worker secrets do).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..kernels import GaussianParameters, SufficientStatistics
from ..kernels.kmeans import ClusterSums
from ..kernels.sampling import Candidates, KeyedRows
from .requests import REQUEST_TYPES, PassRequest

_MAGIC = b"GMM1"
_PREFIX = struct.Struct("!4sI")
_MAX_HEADER_BYTES = 1 << 24
# The largest payload the protocol allows: a resident pass's answers stay below 256 MiB per
# task (larger passes run as Spark jobs), requests far below. Checked before allocating.
MAX_PAYLOAD_BYTES = 1 << 29
_NONCE_BYTES = 32
# Values inside values (a request's mixtures) go this deep at most; tuples hold no tuples.
_MAX_NESTING = 1
_VALUE_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (GaussianParameters, SufficientStatistics, KeyedRows, Candidates, ClusterSums,
                *REQUEST_TYPES)
}
_ARRAY_DTYPES = {"<f8": np.float64, "<i8": np.int64}

Value = (GaussianParameters | SufficientStatistics | KeyedRows | Candidates | ClusterSums
         | PassRequest)


class ChannelError(ConnectionError):
    """The peer closed the connection, failed the challenge or sent a malformed message."""


@dataclass(frozen=True)
class Message:
    """One received message."""

    kind: str
    meta: dict[str, Any] = field(default_factory=dict)
    values: list[Value] = field(default_factory=list)


def new_secret() -> bytes:
    return secrets.token_bytes(32)


def _encode_field(owner: str, item: Any, arrays: list[np.ndarray], offset: int,
                  depth: int, in_tuple: bool = False) -> tuple[dict, int]:
    if isinstance(item, np.ndarray):
        array = np.ascontiguousarray(item, dtype=item.dtype.newbyteorder("<"))
        if array.dtype.str not in _ARRAY_DTYPES:
            raise TypeError(f"{owner} has dtype {array.dtype}; only float64 and int64 arrays "
                            "travel")
        arrays.append(array)
        return {"dtype": array.dtype.str, "shape": list(array.shape),
                "offset": offset}, offset + array.nbytes
    if item is None or isinstance(item, (str, int, float, np.generic)):
        return {"scalar": item.item() if isinstance(item, np.generic) else item}, offset
    if isinstance(item, tuple) and not in_tuple:
        items = []
        for element in item:
            spec, offset = _encode_field(owner, element, arrays, offset, depth, True)
            items.append(spec)
        return {"items": items}, offset
    if type(item).__name__ in _VALUE_TYPES and depth < _MAX_NESTING:
        entry, offset = _encode_value(item, arrays, offset, depth + 1)
        return {"value": entry}, offset
    raise TypeError(f"{owner} of type {type(item).__name__} cannot travel")


def _encode_value(value: Value, arrays: list[np.ndarray], offset: int, depth: int = 0
                  ) -> tuple[dict, int]:
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(value):
        fields[f.name], offset = _encode_field(f"{type(value).__name__}.{f.name}",
                                               getattr(value, f.name), arrays, offset, depth)
    return {"type": type(value).__name__, "fields": fields}, offset


def encode(kind: str, meta: dict[str, Any] | None = None, values: Sequence[Value] = ()
           ) -> bytes:
    """The bytes of one message."""
    arrays: list[np.ndarray] = []
    offset = 0
    encoded = []
    for value in values:
        entry, offset = _encode_value(value, arrays, offset)
        encoded.append(entry)
    header = json.dumps({"kind": kind, "meta": meta or {}, "values": encoded,
                         "payload": offset}).encode()
    return b"".join([_PREFIX.pack(_MAGIC, len(header)), header,
                     *(memoryview(a).cast("B") for a in arrays if a.size)])


def _decode_value(entry: dict[str, Any], payload: bytearray, depth: int = 0) -> Value:
    cls = _VALUE_TYPES.get(entry.get("type", ""))
    if cls is None:
        raise ChannelError(f"unexpected value type {entry.get('type')!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    fields = entry.get("fields", {})
    if set(fields) != names:
        raise ChannelError(f"{cls.__name__} needs fields {sorted(names)}; got {sorted(fields)}")
    return cls(**{name: _decode_field(name, spec, payload, depth)
                  for name, spec in fields.items()})


def _decode_field(name: str, spec: dict[str, Any], payload: bytearray, depth: int,
                  in_tuple: bool = False) -> Any:
    if "scalar" in spec:
        scalar = spec["scalar"]
        if scalar is not None and not isinstance(scalar, (str, int, float)):
            raise ChannelError(f"field {name!r} is not a number, a string or null")
        return scalar
    if "items" in spec:
        if in_tuple:
            raise ChannelError(f"field {name!r} nests tuples")
        return tuple(_decode_field(name, item, payload, depth, True) for item in spec["items"])
    if "value" in spec:
        if depth >= _MAX_NESTING:
            raise ChannelError(f"field {name!r} nests values too deeply")
        return _decode_value(spec["value"], payload, depth + 1)
    dtype = _ARRAY_DTYPES.get(spec.get("dtype"))
    shape = tuple(int(s) for s in spec.get("shape", ()))
    start = int(spec.get("offset", -1))
    if dtype is None or any(s < 0 for s in shape) or start < 0:
        raise ChannelError(f"malformed array field {name!r}")
    count = int(np.prod(shape, dtype=np.int64))
    if start + 8 * count > len(payload):
        raise ChannelError(f"array field {name!r} runs past the payload")
    return np.frombuffer(payload, dtype=dtype, count=count, offset=start).reshape(shape)


def _receive_exactly(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:])
        if count == 0:
            raise ChannelError("the peer closed the connection")
        received += count
    return buffer


def send_message(sock: socket.socket, kind: str, meta: dict[str, Any] | None = None,
                 values: Sequence[Value] = ()) -> None:
    sock.sendall(encode(kind, meta, values))


def receive_message(sock: socket.socket) -> Message:
    """Read one whole message.

    Raises
    ------
    ChannelError
        The connection closed or the bytes are not a message of this protocol.
    """
    magic, length = _PREFIX.unpack(bytes(_receive_exactly(sock, _PREFIX.size)))
    if magic != _MAGIC or length > _MAX_HEADER_BYTES:
        raise ChannelError("not a spark-gmm message")
    try:
        header = json.loads(bytes(_receive_exactly(sock, length)))
        return _message(header, _receive_exactly(sock, _payload_length(header)))
    except (ValueError, KeyError, TypeError) as error:
        raise ChannelError(f"malformed message: {error}") from error


def _payload_length(header: dict[str, Any]) -> int:
    announced = int(header["payload"])
    if not 0 <= announced <= MAX_PAYLOAD_BYTES:
        raise ChannelError(f"the header announces {announced} payload bytes; the protocol "
                           f"allows at most {MAX_PAYLOAD_BYTES}")
    return announced


def _message(header: dict[str, Any], payload: bytearray) -> Message:
    return Message(str(header["kind"]), dict(header["meta"]),
                   [_decode_value(v, payload) for v in header["values"]])


def decode(data: bytes) -> Message:
    """One whole message from the bytes :func:`encode` made (Spark Connect passes carry
    their requests and answers this way).

    Raises
    ------
    ChannelError
        The bytes are not one message of this protocol.
    """
    if len(data) < _PREFIX.size:
        raise ChannelError("not a spark-gmm message")
    magic, length = _PREFIX.unpack_from(data)
    if magic != _MAGIC or length > _MAX_HEADER_BYTES or _PREFIX.size + length > len(data):
        raise ChannelError("not a spark-gmm message")
    try:
        header = json.loads(data[_PREFIX.size:_PREFIX.size + length])
        payload = bytearray(data[_PREFIX.size + length:])  # writable, as a socket's
        if len(payload) != _payload_length(header):
            raise ChannelError("the payload's length is not the one the header announces")
        return _message(header, payload)
    except (ValueError, KeyError, TypeError) as error:
        raise ChannelError(f"malformed message: {error}") from error


def challenge(sock: socket.socket, secret: bytes) -> None:
    """Driver side: raise ChannelError unless the peer proves it holds ``secret``."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sock.sendall(nonce)
    answer = bytes(_receive_exactly(sock, hashlib.sha256().digest_size))
    if not hmac.compare_digest(answer, hmac.digest(secret, nonce, "sha256")):
        raise ChannelError("the peer does not hold this fit's secret")


def answer_challenge(sock: socket.socket, secret: bytes) -> None:
    """Task side: prove to the driver that this task holds ``secret``."""
    nonce = bytes(_receive_exactly(sock, _NONCE_BYTES))
    sock.sendall(hmac.digest(secret, nonce, "sha256"))
