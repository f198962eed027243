"""Signs one request with the official NIFCLOUD Python SDK's Signature Version 2 signer at a fixed time.

Writes sigv2-official.txt: the form body the official SDK sends. The Rust test `signing::official_vector`
checks that our signer produces the same body (as a set of parameters). Run with the venv's python:
    .venv/bin/python crates/nifcloud-sdk/tests/data/gen_sigv2.py
"""
import datetime
import os
from unittest import mock
from urllib.parse import urlencode

import nifcloud.auth  # registers the v2 computing signer
from botocore.auth import AUTH_TYPE_MAPS
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

FIXED = datetime.datetime(2026, 11, 25, 20, 4, 43)

request = AWSRequest(
    method="POST",
    url="http://127.0.0.1:18777/api/",
    data={"Action": "DescribeVolumes", "Version": "3.0", "VolumeId.1": "vol01", "VolumeId.2": "vol 02/日本"},
)
signer = AUTH_TYPE_MAPS["v2"](Credentials("AKIDEXAMPLE", "SECRETEXAMPLE"))
import time

with mock.patch("botocore.auth.time.gmtime", return_value=FIXED.timetuple()):
    signer.add_auth(request)
body = request.data if isinstance(request.data, str) else urlencode(request.data)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sigv2-official.txt")
with open(out, "w") as f:
    f.write(body + "\n")
print(body)
