"""Minimal messages of TF Serving's Predict and GetModelStatus, wire-compatible, built at import.

Why our own: the official messages come with `tensorflow-serving-api`, which imports
TensorFlow (~600 MB resident, seconds of start-up) only to encode a few fields. Protobuf's
wire format carries field numbers and wire types, never message or package names, so
messages with TF Serving's field numbers and types are read and written by TF Serving, OpenVINO
Model Server and `maskwatch serve` as their own. Only the fields this project uses are
declared; anything else a server sends is kept as unknown fields and ignored.

Why built at import (from descriptors written here) rather than generated `_pb2.py`: no
protoc or grpcio-tools anywhere, and no generated code pinned to the protobuf version that
generated it. The package `maskwatch.model_server.v1` is ours, so these types never clash
with the real `tensorflow.*` ones in a process that imports both (the model server, tests).
`tests/schemas/test_model_server_wire.py` checks every field against the official
descriptors and round-trips messages both ways.

The `Protocol` classes type the generated classes for mypy: only the members used here.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping, MutableSequence
from enum import IntEnum
from typing import Protocol, TypeVar, cast

from google.protobuf import (
    descriptor,
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    wrappers_pb2,
)

PACKAGE = "maskwatch.model_server.v1"
FILE_NAME = "maskwatch/model_server/v1/predict.proto"


class DataType(IntEnum):
    """TensorFlow's `DataType` numbers (the subset a tensor here may carry)."""

    DT_INVALID = 0
    DT_FLOAT = 1
    DT_DOUBLE = 2
    DT_INT32 = 3
    DT_UINT8 = 4
    DT_INT16 = 5
    DT_INT8 = 6
    DT_STRING = 7
    DT_INT64 = 9
    DT_BOOL = 10
    DT_BFLOAT16 = 14
    DT_UINT16 = 17
    DT_HALF = 19
    DT_UINT32 = 22
    DT_UINT64 = 23


class VersionState(IntEnum):
    """TF Serving's `ModelVersionStatus.State` numbers."""

    UNKNOWN = 0
    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "bool": _F.TYPE_BOOL,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
}

# name → [(field, number, type, repeated)]; a type is a scalar above, ".full.Name" of a
# message, or "enum:.full.Name". Numbers and types are TF Serving's (see the module doc).
_TENSOR = f".{PACKAGE}.TensorProto"
_MESSAGES: dict[str, list[tuple[str, int, str, bool]]] = {
    "TensorShapeProto": [
        ("dim", 2, f".{PACKAGE}.TensorShapeProto.Dim", True),
        ("unknown_rank", 3, "bool", False),
    ],
    "TensorShapeProto.Dim": [("size", 1, "int64", False), ("name", 2, "string", False)],
    "TensorProto": [
        ("dtype", 1, f"enum:.{PACKAGE}.DataType", False),
        ("tensor_shape", 2, f".{PACKAGE}.TensorShapeProto", False),
        ("version_number", 3, "int32", False),
        ("tensor_content", 4, "bytes", False),
        ("float_val", 5, "float", True),
        ("double_val", 6, "double", True),
        ("int_val", 7, "int32", True),
        ("int64_val", 10, "int64", True),
        ("bool_val", 11, "bool", True),
        ("half_val", 13, "int32", True),
        ("uint32_val", 16, "uint32", True),
        ("uint64_val", 17, "uint64", True),
    ],
    "ModelSpec": [
        ("name", 1, "string", False),
        ("version", 2, ".google.protobuf.Int64Value", False),
        ("signature_name", 3, "string", False),
        ("version_label", 4, "string", False),
    ],
    "PredictRequest": [
        ("model_spec", 1, f".{PACKAGE}.ModelSpec", False),
        ("inputs", 2, f".{PACKAGE}.PredictRequest.InputsEntry", True),
        ("output_filter", 3, "string", True),
    ],
    "PredictRequest.InputsEntry": [("key", 1, "string", False), ("value", 2, _TENSOR, False)],
    "PredictResponse": [
        ("outputs", 1, f".{PACKAGE}.PredictResponse.OutputsEntry", True),
        ("model_spec", 2, f".{PACKAGE}.ModelSpec", False),
    ],
    "PredictResponse.OutputsEntry": [("key", 1, "string", False), ("value", 2, _TENSOR, False)],
    "GetModelStatusRequest": [("model_spec", 1, f".{PACKAGE}.ModelSpec", False)],
    "GetModelStatusResponse": [("model_version_status", 1, f".{PACKAGE}.ModelVersionStatus", True)],
    "ModelVersionStatus": [
        ("version", 1, "int64", False),
        ("state", 2, f"enum:.{PACKAGE}.ModelVersionStatus.State", False),
    ],
}
_ONEOFS = {"ModelSpec": ("version_choice", {"version", "version_label"})}
_ENUMS: dict[str, list[tuple[str, int]]] = {
    "DataType": [(member.name, member.value) for member in DataType],
    "ModelVersionStatus.State": [(member.name, member.value) for member in VersionState],
}


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The `.proto` file these messages would be compiled from, as a descriptor."""
    proto = descriptor_pb2.FileDescriptorProto(
        name=FILE_NAME,
        package=PACKAGE,
        syntax="proto3",
        dependency=[wrappers_pb2.DESCRIPTOR.name],
    )
    for path in sorted(_MESSAGES, key=lambda p: p.count(".")):  # parents before children
        message = _message_at(proto, path, create=True)
        for name, number, kind, repeated in _MESSAGES[path]:
            field = message.field.add(name=name, number=number, json_name=_camel(name))
            field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            if kind in _SCALARS:
                field.type = _SCALARS[kind]
            elif kind.startswith("enum:"):
                field.type, field.type_name = _F.TYPE_ENUM, kind.removeprefix("enum:")
            else:
                field.type, field.type_name = _F.TYPE_MESSAGE, kind
        if path.endswith("Entry"):
            message.options.map_entry = True
        if path in _ONEOFS:
            oneof, members = _ONEOFS[path]
            message.oneof_decl.add(name=oneof)
            for field in message.field:
                if field.name in members:
                    field.oneof_index = 0
    for path, values in _ENUMS.items():
        parent, _, name = path.rpartition(".")
        owner = _message_at(proto, parent, create=False) if parent else proto
        owner.enum_type.add(
            name=name,
            value=[descriptor_pb2.EnumValueDescriptorProto(name=n, number=v) for n, v in values],
        )
    return proto


def _message_at(
    proto: descriptor_pb2.FileDescriptorProto, path: str, create: bool
) -> descriptor_pb2.DescriptorProto:
    """The (nested) message `A.B` of `proto`; created when `create` and it is the last part."""
    *parents, name = path.split(".")
    container = proto.message_type
    for parent in parents:
        container = next(m for m in container if m.name == parent).nested_type
    found = next((m for m in container if m.name == name), None)
    if found is not None:
        return found
    if not create:
        raise KeyError(path)
    return container.add(name=name)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _load() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(FILE_NAME)
    except KeyError:
        pool.Add(file_descriptor())
    return pool


_POOL = _load()


def _class(name: str) -> type:
    cls: type = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{PACKAGE}.{name}"))
    return cls


# ------------------------------------------------------------------- typing


_M_co = TypeVar("_M_co", covariant=True)


class Message(Protocol):
    @property
    def DESCRIPTOR(self) -> descriptor.Descriptor: ...  # noqa: N802
    def SerializeToString(self) -> bytes: ...  # noqa: N802 - protobuf's names
    def ParseFromString(self, data: bytes) -> int: ...  # noqa: N802
    def HasField(self, name: str) -> bool: ...  # noqa: N802


class Dim(Protocol):
    size: int
    name: str


class Dims(Protocol):
    def add(self, *, size: int = ...) -> Dim: ...
    def __iter__(self) -> Iterator[Dim]: ...
    def __len__(self) -> int: ...


class TensorShape(Protocol):
    @property
    def dim(self) -> Dims: ...

    unknown_rank: bool


class TensorMessage(Message, Protocol):
    """Also satisfied by TensorFlow's own `TensorProto` (same field names)."""

    dtype: int
    tensor_content: bytes

    @property
    def tensor_shape(self) -> TensorShape: ...


class Int64Value(Protocol):
    value: int


class ModelSpecMessage(Message, Protocol):
    name: str
    signature_name: str

    @property
    def version(self) -> Int64Value: ...


class PredictRequestMessage(Message, Protocol):
    @property
    def model_spec(self) -> ModelSpecMessage: ...
    @property
    def inputs(self) -> MutableMapping[str, TensorMessage]: ...
    @property
    def output_filter(self) -> MutableSequence[str]: ...


class PredictResponseMessage(Message, Protocol):
    @property
    def model_spec(self) -> ModelSpecMessage: ...
    @property
    def outputs(self) -> MutableMapping[str, TensorMessage]: ...


class GetModelStatusRequestMessage(Message, Protocol):
    @property
    def model_spec(self) -> ModelSpecMessage: ...


class VersionStatus(Protocol):
    version: int
    state: int


class GetModelStatusResponseMessage(Message, Protocol):
    @property
    def model_version_status(self) -> MutableSequence[VersionStatus]: ...


class MessageType(Protocol[_M_co]):
    """A message class: `Type()` makes an empty message, `Type.FromString` parses one."""

    def __call__(self) -> _M_co: ...
    def FromString(self, data: bytes) -> _M_co: ...  # noqa: N802


TensorProto = cast(MessageType[TensorMessage], _class("TensorProto"))
PredictRequest = cast(MessageType[PredictRequestMessage], _class("PredictRequest"))
PredictResponse = cast(MessageType[PredictResponseMessage], _class("PredictResponse"))
GetModelStatusRequest = cast(
    MessageType[GetModelStatusRequestMessage], _class("GetModelStatusRequest")
)
GetModelStatusResponse = cast(
    MessageType[GetModelStatusResponseMessage], _class("GetModelStatusResponse")
)
