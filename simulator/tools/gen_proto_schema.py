#!/usr/bin/env python3
"""Derives the simulator's protobuf wire schema (simulator/src/protobuf/schema.txt).

Kubernetes' protobuf encoding numbers each field; the JSON form names it. This script reads
the field numbers and wire types from the `k8s-pb` crate (prost bindings generated from the
Kubernetes .proto files) and the JSON field names from `k8s-openapi`, both from the local cargo
registry, and writes one compact table the simulator embeds to turn protobuf request bodies into
JSON. Run it again after bumping either crate:

    python3 simulator/tools/gen_proto_schema.py ~/.cargo/registry/src/*/k8s-pb-0.9.0 \
        ~/.cargo/registry/src/*/k8s-openapi-0.29.*/src/v1_33 > simulator/src/protobuf/schema.txt

Output format, one message per block:
    M <message path>
    <tag> <jsonName> <type>
where <type> is s (string), b (bool), i (int32/int64), d (double), y (bytes), m:<path> (message),
prefixed by * when repeated, or {s:s}, {s:y}, {s:m:<path>} for maps with string keys.
"""
import os
import re
import sys

PB_ROOT, OPENAPI_ROOT = sys.argv[1], sys.argv[2]
ROOTS = [
    "api.core.v1", "api.apps.v1", "api.batch.v1", "api.rbac.v1", "api.coordination.v1",
    "api.networking.v1", "api.policy.v1", "api.storage.v1", "api.events.v1",
    "api.autoscaling.v1", "api.autoscaling.v2", "api.scheduling.v1", "api.discovery.v1",
    "api.authentication.v1", "api.authorization.v1",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1",
    "apimachinery.pkg.apis.meta.v1", "apimachinery.pkg.runtime",
    "apimachinery.pkg.util.intstr", "apimachinery.pkg.api.resource",
]

ATTR = re.compile(r'#\[prost\((\w+)(?: = "([^"]*)")?(?:, (optional|repeated|required))?, tag = "(\d+)"\)\]')
STRUCT = re.compile(r'^pub struct (\w+) \{')
FIELD = re.compile(r'^\s*pub (?:r#)?(\w+):\s*(.*)$')


def parse_module(modpath):
    path = os.path.join(PB_ROOT, "src", *modpath.split("."), "mod.rs")
    messages = {}
    current = None
    pending = None
    lines = open(path).read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = STRUCT.match(line)
        if m:
            current = m.group(1)
            messages[current] = []
        elif line.startswith("}"):
            current = None
        elif current:
            a = ATTR.search(line)
            if a:
                pending = a.groups()
            else:
                f = FIELD.match(line)
                if f and pending:
                    ty = f.group(2)
                    while not ty.rstrip().endswith(",") or ty.count("<") != ty.count(">"):
                        i += 1
                        ty += lines[i].strip()
                    messages[current].append((pending, f.group(1), ty.rstrip(",").strip()))
                    pending = None
        i += 1
    return messages


def resolve(modpath, ty):
    ty = ty.replace(" ", "").replace(",>", ">")
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<"):
        if ty.startswith(wrapper):
            ty = ty[len(wrapper):-1]
    if ty.startswith("::prost::alloc::collections::BTreeMap<"):
        ty = ty[len("::prost::alloc::collections::BTreeMap<"):-1].split(",", 1)[1]
    parts = ty.split("::")
    mod = modpath.split(".")
    while parts and parts[0] == "super":
        mod = mod[:-1]
        parts = parts[1:]
    return ".".join(mod + parts)


def openapi_names():
    """io.k8s type name -> list of JSON keys, from k8s-openapi's Deserialize impls."""
    out = {}
    for dirpath, _, files in os.walk(OPENAPI_ROOT):
        for name in files:
            if not name.endswith(".rs"):
                continue
            text = open(os.path.join(dirpath, name)).read()
            schema = re.search(r'"(io\.k8s\.[\w.\-]+)"\.into\(\)', text)
            if not schema:
                continue
            out[schema.group(1)] = re.findall(r'"([^"]+)" => Field::Key_', text)
    return out


def io_name(path):
    if path.startswith("apiextensions_apiserver."):
        return "io.k8s.apiextensions-apiserver." + path[len("apiextensions_apiserver."):]
    return "io.k8s." + path


def norm(s):
    return s.replace("_", "").replace("-", "").replace("$", "").lower()


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def main():
    names = openapi_names()
    modules = {}
    for mod in ROOTS:
        modules[mod] = parse_module(mod)
    out = []
    todo = [f"{mod}.{msg}" for mod in ROOTS for msg in modules[mod]]
    done = set()
    while todo:
        full = todo.pop(0)
        if full in done:
            continue
        done.add(full)
        mod, msg = full.rsplit(".", 1)
        if mod not in modules:
            modules[mod] = parse_module(mod)
        fields = modules[mod].get(msg)
        if fields is None:
            print(f"unknown message {full}", file=sys.stderr)
            continue
        json_keys = {norm(k): k for k in names.get(io_name(full), [])}
        out.append(f"M {full}")
        for (kind, arg, label, tag), rust_name, ty in fields:
            json_name = json_keys.get(norm(rust_name), camel(rust_name))
            if kind == "btree_map":
                key, val = [p.strip() for p in arg.split(",")]
                assert key == "string", (full, rust_name)
                if val == "message":
                    target = resolve(mod, ty)
                    todo.append(target)
                    t = "{s:m:" + target + "}"
                else:
                    t = "{s:" + {"string": "s", "bytes": "y"}[val] + "}"
            elif kind == "message":
                target = resolve(mod, ty)
                todo.append(target)
                t = "m:" + target
            else:
                t = {"string": "s", "bool": "b", "int32": "i", "int64": "i", "double": "d",
                     "bytes": "y"}[kind]
            if label == "repeated":
                t = "*" + t
            out.append(f"{tag} {json_name} {t}")
    print("\n".join(out))


main()
