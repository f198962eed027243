#!/usr/bin/env python3
"""Conformance vectors for the Rust SDK, produced by the official Python SDK (nifcloud 1.17.0 / botocore 1.37.10).

For every operation of the vendored computing model this script
  * builds a deterministic sample input with every member set (lists of two entries, nested structures filled),
    serializes it with the official `ComputingSerializer` and records the form parameters;
  * builds a sample XML reply from the output shape (real element names, `item`/`member` list entries, empty
    numeric and timestamp elements, numbers with surrounding whitespace, timestamps with offsets, escaped text)
    and records what the official `ComputingQueryParser` returns for it;
  * writes a second copy of that reply with some element names in a different case (the real API does this) and
    records what the official parser returns for it too (it loses those members; the Rust parser must not).

Output: ../tests/vectors/computing.json (relative to this file). Run with the venv that has the official SDK:
    /work/main/.venv/bin/python crates/nifcloud-sdk/conformance/gen_vectors.py
"""

import datetime
import json
import os
import sys
from xml.sax.saxutils import escape

import nifcloud  # noqa: F401  (registers the computing serializer, parser and data path)
from botocore import parsers
from nifcloud import session as nifcloud_session

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'tests', 'vectors', 'computing.json')
NAMESPACE = 'https://computing.api.nifcloud.com/api/'
TIMESTAMPS = [
    '2024-06-25T16:21:47.000+09:00',
    '2024-06-25T07:21:47Z',
    '2023-01-02T03:04:05.250+09:00',
]
TRICKY = [' with space', '/slash+plus', '&amp<lt>', '日本語', '=eq&and']


class Counter:
    def __init__(self):
        self.n = 0

    def next(self):
        self.n += 1
        return self.n


def sample_input(shape, name, counter):
    """A value for `shape` with every member set; `name` is the member name, used in strings."""
    t = shape.type_name
    n = counter.next()
    if t == 'structure':
        return {m: sample_input(s, m, counter) for m, s in shape.members.items()}
    if t == 'list':
        return [sample_input(shape.member, name, counter) for _ in range(2)]
    if t == 'string':
        if shape.enum:
            return shape.enum[n % len(shape.enum)]
        return '%s-%d%s' % (name, n, TRICKY[n % len(TRICKY)] if n % 3 == 0 else '')
    if t in ('integer', 'long'):
        return n * 7
    if t == 'boolean':
        return n % 2 == 0
    if t in ('double', 'float'):
        return n + 0.5
    if t == 'timestamp':
        return datetime.datetime(2024, 1, 1, 0, 0, n % 60, tzinfo=datetime.timezone.utc)
    raise ValueError('unsupported input type %s' % t)


def mangle(name):
    """The element name with its first letter's case flipped (`accountingType` -> `AccountingType`)."""
    first = name[0]
    return (first.lower() if first.isupper() else first.upper()) + name[1:]


def sample_xml(shape, counter, mangled, out):
    """Appends the XML content of `shape` (children only) to `out`; element names may be case-mangled."""
    for member_name, member in shape.members.items():
        loc = member.serialization.get('name', member_name)
        n = counter.next()
        tag = loc
        if mangled and (n % 5 == 0 or n == 2):
            tag = mangle(loc)
        t = member.type_name
        if t == 'structure':
            out.append('<%s>' % tag)
            sample_xml(member, counter, mangled, out)
            out.append('</%s>' % tag)
        elif t == 'list':
            item = member.member.serialization.get('name', 'member')
            out.append('<%s>' % tag)
            for _ in range(2):
                if member.member.type_name == 'structure':
                    out.append('<%s>' % item)
                    sample_xml(member.member, counter, mangled, out)
                    out.append('</%s>' % item)
                else:
                    out.append('<%s>%s</%s>' % (item, scalar_text(member.member, member_name, counter.next()), item))
            out.append('</%s>' % tag)
        else:
            text = scalar_text(member, member_name, n)
            if text is None:
                out.append('<%s/>' % tag)
            else:
                out.append('<%s>%s</%s>' % (tag, text, tag))


def scalar_text(shape, name, n):
    """XML text for a scalar (already escaped); None means an empty element."""
    t = shape.type_name
    if t == 'string':
        if shape.enum:
            return escape(shape.enum[n % len(shape.enum)])
        return escape('%s-%d%s' % (name, n, TRICKY[n % len(TRICKY)] if n % 4 == 0 else ''))
    if t in ('integer', 'long'):
        if n % 11 == 0:
            return None
        return ' %d\n ' % (n * 3) if n % 7 == 0 else str(n * 3)
    if t == 'boolean':
        return 'true' if n % 2 else 'false'
    if t in ('double', 'float'):
        return '%d.25' % n
    if t == 'timestamp':
        if n % 9 == 0:
            return None
        return TIMESTAMPS[n % len(TIMESTAMPS)]
    if t == 'blob':
        return 'AAAA'
    raise ValueError('unsupported output type %s' % t)


def reply(op_name, shape, mangled):
    counter = Counter()
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<%sResponse xmlns="%s">' % (op_name, NAMESPACE)]
    sample_xml(shape, counter, mangled, out)
    out.append('</%sResponse>' % op_name)
    return ''.join(out)


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return value


def parse(parser, shape, body):
    parsed = parser.parse({'body': body.encode('utf-8'), 'headers': {}, 'status_code': 200}, shape)
    meta = parsed.get('ResponseMetadata')
    if isinstance(meta, dict):
        for key in ('HTTPStatusCode', 'HTTPHeaders', 'RetryAttempts', 'HostId'):
            meta.pop(key, None)
        if not meta:
            del parsed['ResponseMetadata']
    return jsonable(parsed)


def required_wire_names(shape):
    """Wire names of the input's top-level required members (EC2 rule: capitalised locationName)."""
    if shape is None:
        return []
    names = []
    for member in shape.required_members:
        loc = shape.members[member].serialization.get('name', member)
        names.append(loc[0].upper() + loc[1:])
    return sorted(names)


def param_text(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def main():
    session = nifcloud_session.get_session()
    client = session.create_client(
        'computing', region_name='jp-east-1',
        nifcloud_access_key_id='AKIDEXAMPLE', nifcloud_secret_access_key='SECRET')
    model = client.meta.service_model
    serializer = client._serializer
    parser = parsers.create_parser(model.protocol)
    vectors = []
    for op_name in sorted(model.operation_names):
        op = model.operation_model(op_name)
        params = sample_input(op.input_shape, op_name, Counter()) if op.input_shape is not None else {}
        request = serializer.serialize_to_request(params, op)
        body = request['body']
        wire = sorted([k, param_text(v)] for k, v in body.items() if k not in ('Action', 'Version'))
        assert body['Action'] == op_name and body['Version'] == model.api_version, op_name
        canonical = reply(op_name, op.output_shape, mangled=False)
        mangled = reply(op_name, op.output_shape, mangled=True)
        vectors.append({
            'operation': op_name,
            'input': jsonable(params),
            'params': wire,
            'url_path': request['url_path'],
            'required_wire_names': required_wire_names(op.input_shape),
            'reply': canonical,
            'parsed': parse(parser, op.output_shape, canonical),
            'reply_case_mangled': mangled,
            'parsed_case_mangled_by_python': parse(parser, op.output_shape, mangled),
        })
    doc = {
        'generator': 'conformance/gen_vectors.py',
        'official_sdk': 'nifcloud %s' % nifcloud.__version__,
        'api_version': model.api_version,
        'operations': vectors,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w', encoding='utf-8') as f:
        json.dump(doc, f, ensure_ascii=False, indent=0, sort_keys=True)
        f.write('\n')
    print('wrote %d operations to %s' % (len(vectors), os.path.relpath(OUT)), file=sys.stderr)


if __name__ == '__main__':
    main()
