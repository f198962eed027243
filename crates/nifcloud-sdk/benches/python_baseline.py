#!/usr/bin/env python3
"""The official Python SDK (nifcloud 1.17.0 / botocore 1.37.10) doing the work of `benches/sdk.rs`.

Usage: python_baseline.py INSTANCES_XML VOLUMES_XML REQUESTS
  * parses the DescribeInstances and DescribeVolumes replies with the official computing parser;
  * builds, validates, serializes, signs (SigV2, HmacSHA256) and form-encodes REQUESTS requests, rotating
    DescribeVolumes, CreateVolume and RegisterInstancesWithLoadBalancer like the Rust benchmark.
Prints `instances_ms=`, `volumes_ms=` and `requests_ms=` lines (best of several runs), which the Rust benchmark
reads. No network is used.
"""

import sys
import time
from urllib.parse import urlencode

import nifcloud  # noqa: F401  (registers the computing serializer, parser and SigV2 signer)
from botocore import parsers
from botocore.auth import AUTH_TYPE_MAPS
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from nifcloud import session as nifcloud_session

URL = 'https://jp-east-1.computing.api.nifcloud.com/api/'


def best(runs, fn):
    result = float('inf')
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        result = min(result, time.perf_counter() - start)
    return result * 1e3


def main():
    instances_path, volumes_path, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(instances_path, 'rb') as f:
        instances = f.read()
    with open(volumes_path, 'rb') as f:
        volumes = f.read()

    session = nifcloud_session.get_session()
    client = session.create_client(
        'computing', region_name='jp-east-1',
        nifcloud_access_key_id='AKIDEXAMPLE', nifcloud_secret_access_key='secret-for-benchmarks-only')
    model = client.meta.service_model
    serializer = client._serializer
    parser = parsers.create_parser(model.protocol)
    signer = AUTH_TYPE_MAPS['v2'](Credentials('AKIDEXAMPLE', 'secret-for-benchmarks-only'))

    di = model.operation_model('DescribeInstances')
    dv = model.operation_model('DescribeVolumes')
    parsed = parser.parse({'body': instances, 'headers': {}, 'status_code': 200}, di.output_shape)
    count = sum(len(r['InstancesSet']) for r in parsed['ReservationSet'])
    assert count == 1000, count
    parsed = parser.parse({'body': volumes, 'headers': {}, 'status_code': 200}, dv.output_shape)
    assert len(parsed['VolumeSet']) == 1000

    def parse_instances():
        return parser.parse({'body': instances, 'headers': {}, 'status_code': 200}, di.output_shape)

    def parse_volumes():
        return parser.parse({'body': volumes, 'headers': {}, 'status_code': 200}, dv.output_shape)

    cv = model.operation_model('CreateVolume')
    rl = model.operation_model('RegisterInstancesWithLoadBalancer')

    def one(op, params):
        serialized = serializer.serialize_to_request(params, op)
        request = AWSRequest(method='POST', url=URL, data=serialized['body'])
        signer.add_auth(request)
        return urlencode(request.data)

    def run_requests():
        total = 0
        for i in range(requests):
            k = i % 3
            if k == 0:
                body = one(dv, {'VolumeId': ['pvc%04d' % i, 'vol 02/日本']})
            elif k == 1:
                body = one(cv, {'Size': 100, 'DiskType': '8', 'InstanceId': 'node%04d' % (i % 300),
                                'AccountingType': '2', 'Description': 'pvc-%08x' % i})
            else:
                body = one(rl, {'LoadBalancerName': 'lb1', 'LoadBalancerPort': 80, 'InstancePort': 30080,
                                'Instances': [{'InstanceId': 'node%04d' % n} for n in range(3)]})
            total += len(body)
        return total

    print('instances_ms=%.3f' % best(3, parse_instances))
    print('volumes_ms=%.3f' % best(3, parse_volumes))
    print('requests_ms=%.3f' % best(2, run_requests))


if __name__ == '__main__':
    main()
