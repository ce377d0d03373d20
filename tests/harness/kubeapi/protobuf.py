"""The Kubernetes protobuf encoding (``application/vnd.kubernetes.protobuf``) for the kinds that clients send
or ask for in it: v1 Secret, ConfigMap (and their lists), Namespace, ServiceAccount, Status, DeleteOptions,
the access reviews (kubectl auth can-i). Field numbers are those of k8s.io/api's generated.proto.

Wire format: the 4-byte magic ``k8s\\0`` then a ``runtime.Unknown`` message {typeMeta{apiVersion, kind},
raw, contentEncoding, contentType} whose ``raw`` is the object's own message. helm's release storage
(Secrets) POSTs and PUTs in this encoding, as do kubectl's typed commands (create namespace/secret/
configmap/serviceaccount, auth can-i). Other kinds answer 415 UnsupportedMediaType - notably the
workload generators (``kubectl create deployment/job/service``); use ``kubectl apply`` for those.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

Schema = dict[int, tuple[str, str, Any]]

TIME: Schema = {1: ("seconds", "int64", None), 2: ("nanos", "int32", None)}
OWNER_REF: Schema = {
    1: ("kind", "string", None),
    3: ("name", "string", None),
    4: ("uid", "string", None),
    5: ("apiVersion", "string", None),
    6: ("controller", "bool", None),
    7: ("blockOwnerDeletion", "bool", None),
}
MANAGED: Schema = {
    1: ("manager", "string", None),
    2: ("operation", "string", None),
    3: ("apiVersion", "string", None),
    4: ("time", "time", None),
    6: ("fieldsType", "string", None),
    7: ("fieldsV1", "fieldsv1", None),
    8: ("subresource", "string", None),
}
OBJECT_META: Schema = {
    1: ("name", "string", None),
    2: ("generateName", "string", None),
    3: ("namespace", "string", None),
    4: ("selfLink", "string", None),
    5: ("uid", "string", None),
    6: ("resourceVersion", "string", None),
    7: ("generation", "int64", None),
    8: ("creationTimestamp", "time", None),
    9: ("deletionTimestamp", "time", None),
    10: ("deletionGracePeriodSeconds", "int64", None),
    11: ("labels", "map_ss", None),
    12: ("annotations", "map_ss", None),
    13: ("ownerReferences", "rep_msg", OWNER_REF),
    14: ("finalizers", "rep_string", None),
    17: ("managedFields", "rep_msg", MANAGED),
}
LIST_META: Schema = {
    1: ("selfLink", "string", None),
    2: ("resourceVersion", "string", None),
    3: ("continue", "string", None),
    4: ("remainingItemCount", "int64", None),
}
SECRET: Schema = {
    1: ("metadata", "msg", OBJECT_META),
    2: ("data", "map_sb", None),
    3: ("type", "string", None),
    4: ("stringData", "map_ss", None),
    5: ("immutable", "bool", None),
}
CONFIGMAP: Schema = {
    1: ("metadata", "msg", OBJECT_META),
    2: ("data", "map_ss", None),
    3: ("binaryData", "map_sb", None),
    4: ("immutable", "bool", None),
}
NAMESPACE: Schema = {
    1: ("metadata", "msg", OBJECT_META),
    2: ("spec", "msg", {1: ("finalizers", "rep_string", None)}),
    3: ("status", "msg", {1: ("phase", "string", None)}),
}
DELETE_OPTIONS: Schema = {
    1: ("gracePeriodSeconds", "int64", None),
    2: ("preconditions", "msg", {1: ("uid", "string", None), 2: ("resourceVersion", "string", None)}),
    3: ("orphanDependents", "bool", None),
    4: ("propagationPolicy", "string", None),
    5: ("dryRun", "rep_string", None),
}
CAUSE: Schema = {1: ("reason", "string", None), 2: ("message", "string", None), 3: ("field", "string", None)}
STATUS: Schema = {
    1: ("metadata", "msg", LIST_META),
    2: ("status", "string", None),
    3: ("message", "string", None),
    4: ("reason", "string", None),
    5: (
        "details",
        "msg",
        {
            1: ("name", "string", None),
            2: ("group", "string", None),
            3: ("kind", "string", None),
            4: ("causes", "rep_msg", CAUSE),
            5: ("retryAfterSeconds", "int32", None),
            6: ("uid", "string", None),
        },
    ),
    6: ("code", "int32", None),
}
RESOURCE_ATTRS: Schema = {
    1: ("namespace", "string", None),
    2: ("verb", "string", None),
    3: ("group", "string", None),
    4: ("version", "string", None),
    5: ("resource", "string", None),
    6: ("subresource", "string", None),
    7: ("name", "string", None),
}
NON_RESOURCE_ATTRS: Schema = {1: ("path", "string", None), 2: ("verb", "string", None)}
ACCESS_STATUS: Schema = {
    1: ("allowed", "bool", None),
    4: ("denied", "bool", None),
    2: ("reason", "string", None),
    3: ("evaluationError", "string", None),
}
ACCESS_SPEC: Schema = {
    1: ("resourceAttributes", "msg", RESOURCE_ATTRS),
    2: ("nonResourceAttributes", "msg", NON_RESOURCE_ATTRS),
    3: ("user", "string", None),
    4: ("groups", "rep_string", None),
    6: ("uid", "string", None),
}
RULES_STATUS: Schema = {
    1: (
        "resourceRules",
        "rep_msg",
        {
            1: ("verbs", "rep_string", None),
            2: ("apiGroups", "rep_string", None),
            3: ("resources", "rep_string", None),
            4: ("resourceNames", "rep_string", None),
        },
    ),
    2: (
        "nonResourceRules",
        "rep_msg",
        {1: ("verbs", "rep_string", None), 2: ("nonResourceURLs", "rep_string", None)},
    ),
    3: ("incomplete", "bool", None),
    4: ("evaluationError", "string", None),
}
OBJECT_REF: Schema = {
    1: ("kind", "string", None),
    2: ("namespace", "string", None),
    3: ("name", "string", None),
    4: ("uid", "string", None),
    5: ("apiVersion", "string", None),
    6: ("resourceVersion", "string", None),
    7: ("fieldPath", "string", None),
}
SERVICE_ACCOUNT: Schema = {
    1: ("metadata", "msg", OBJECT_META),
    2: ("secrets", "rep_msg", OBJECT_REF),
    3: ("imagePullSecrets", "rep_msg", {1: ("name", "string", None)}),
    4: ("automountServiceAccountToken", "bool", None),
}
_REVIEW = {
    1: ("metadata", "msg", OBJECT_META),
    2: ("spec", "msg", ACCESS_SPEC),
    3: ("status", "msg", ACCESS_STATUS),
}
KINDS: dict[str, Schema] = {
    "SelfSubjectAccessReview": _REVIEW,
    "SubjectAccessReview": _REVIEW,
    "LocalSubjectAccessReview": _REVIEW,
    "SelfSubjectRulesReview": {
        1: ("metadata", "msg", OBJECT_META),
        2: ("spec", "msg", {1: ("namespace", "string", None)}),
        3: ("status", "msg", RULES_STATUS),
    },
    "ServiceAccount": SERVICE_ACCOUNT,
    "Secret": SECRET,
    "ConfigMap": CONFIGMAP,
    "Namespace": NAMESPACE,
    "DeleteOptions": DELETE_OPTIONS,
    "Status": STATUS,
    "SecretList": {1: ("metadata", "msg", LIST_META), 2: ("items", "rep_msg", SECRET)},
    "ConfigMapList": {1: ("metadata", "msg", LIST_META), 2: ("items", "rep_msg", CONFIGMAP)},
    "NamespaceList": {1: ("metadata", "msg", LIST_META), 2: ("items", "rep_msg", NAMESPACE)},
}
UNKNOWN: Schema = {
    1: ("typeMeta", "msg", {1: ("apiVersion", "string", None), 2: ("kind", "string", None)}),
    2: ("raw", "rawbytes", None),
    3: ("contentEncoding", "string", None),
    4: ("contentType", "string", None),
}


class ProtobufError(ValueError):
    pass


# ---------------------------------------------------------------------------------------- wire


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes):
    i = 0
    while i < len(buf):
        tag, i = _varint(buf, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            val, i = buf[i : i + n], i + n
        elif wt == 1:
            val, i = buf[i : i + 8], i + 8
        elif wt == 5:
            val, i = buf[i : i + 4], i + 4
        else:
            raise ProtobufError(f"unsupported wire type {wt}")
        yield num, wt, val


def _signed(v: int, bits: int = 64) -> int:
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def _fmt_time(msg: bytes) -> str:
    t = decode_message(msg, TIME)
    return datetime.fromtimestamp(t.get("seconds", 0), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decode_message(buf: bytes, schema: Schema) -> dict:
    out: dict[str, Any] = {}
    for num, _wt, val in _fields(buf):
        if num not in schema:
            continue
        name, typ, sub = schema[num]
        if typ == "string":
            out[name] = val.decode()
        elif typ == "rawbytes":
            out[name] = bytes(val)
        elif typ in ("int64", "int32"):
            out[name] = _signed(val, 64)
        elif typ == "bool":
            out[name] = bool(val)
        elif typ == "msg":
            out[name] = decode_message(val, sub)
        elif typ == "time":
            out[name] = _fmt_time(val)
        elif typ == "fieldsv1":
            raw = decode_message(val, {1: ("raw", "rawbytes", None)}).get("raw", b"{}")
            out[name] = json.loads(raw or b"{}")
        elif typ in ("map_ss", "map_sb"):
            entry = decode_message(val, {1: ("k", "string", None), 2: ("v", "rawbytes", None)})
            v = entry.get("v", b"")
            out.setdefault(name, {})[entry.get("k", "")] = (
                v.decode() if typ == "map_ss" else base64.b64encode(v).decode()
            )
        elif typ == "rep_string":
            out.setdefault(name, []).append(val.decode())
        elif typ == "rep_msg":
            out.setdefault(name, []).append(decode_message(val, sub))
    return out


def _enc_varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(num: int, wt: int) -> bytes:
    return _enc_varint(num << 3 | wt)


def _len(num: int, data: bytes) -> bytes:
    return _key(num, 2) + _enc_varint(len(data)) + data


def _parse_time(s: str) -> int:
    return int(datetime.strptime(s.replace("Z", "+0000")[:19] + "+0000", "%Y-%m-%dT%H:%M:%S%z").timestamp())


def encode_message(obj: dict, schema: Schema) -> bytes:
    out = bytearray()
    for num, (name, typ, sub) in sorted(schema.items()):
        if name not in obj or obj[name] is None:
            continue
        v = obj[name]
        if typ == "string":
            out += _len(num, str(v).encode())
        elif typ == "rawbytes":
            out += _len(num, bytes(v))
        elif typ in ("int64", "int32"):
            out += _key(num, 0) + _enc_varint(int(v))
        elif typ == "bool":
            out += _key(num, 0) + _enc_varint(1 if v else 0)
        elif typ == "msg":
            out += _len(num, encode_message(v, sub))
        elif typ == "time":
            out += _len(num, encode_message({"seconds": _parse_time(v)}, TIME))
        elif typ == "fieldsv1":
            out += _len(num, _len(1, json.dumps(v, separators=(",", ":")).encode()))
        elif typ in ("map_ss", "map_sb"):
            for k in sorted(v):
                val = v[k].encode() if typ == "map_ss" else base64.b64decode(v[k])
                out += _len(num, _len(1, k.encode()) + _len(2, val))
        elif typ == "rep_string":
            for s in v:
                out += _len(num, s.encode())
        elif typ == "rep_msg":
            for item in v:
                out += _len(num, encode_message(item, sub))
    return bytes(out)


# ------------------------------------------------------------------------------------- envelope


def decode(body: bytes) -> dict:
    """Envelope -> JSON-shaped dict (with apiVersion/kind); ProtobufError if unsupported."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing k8s protobuf magic prefix")
    unknown = decode_message(body[len(MAGIC) :], UNKNOWN)
    tm = unknown.get("typeMeta", {})
    kind = tm.get("kind", "")
    schema = KINDS.get(kind)
    if schema is None:
        raise ProtobufError(f"protobuf decoding of kind {kind!r} is not simulated")
    obj = decode_message(unknown.get("raw", b""), schema)
    obj["apiVersion"], obj["kind"] = tm.get("apiVersion", "v1"), kind
    return obj


def can_encode(kind: str) -> bool:
    return kind in KINDS


def encode(obj: dict) -> bytes:
    kind = obj["kind"]
    raw = encode_message(obj, KINDS[kind])
    unknown = {"typeMeta": {"apiVersion": obj.get("apiVersion", "v1"), "kind": kind}, "raw": raw}
    return MAGIC + encode_message(unknown, UNKNOWN)
