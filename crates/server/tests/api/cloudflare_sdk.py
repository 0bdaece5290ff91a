"""Cloudflare's official Python SDK (PyPI `cloudflare`), unchanged, against an edgecap server.

Run by sdk.rs with EDGECAP_BASE (http://127.0.0.1:PORT/client/v4), EDGECAP_TOKEN,
EDGECAP_ACCOUNT and EDGECAP_DEST (a file:// directory). Every step asserts what a user of the
SDK would check; the last line printed is a JSON summary for the Rust side.
"""
import json
import os
import sys
import time

import cloudflare

base, token = os.environ["EDGECAP_BASE"], os.environ["EDGECAP_TOKEN"]
account, dest = os.environ["EDGECAP_ACCOUNT"], os.environ["EDGECAP_DEST"]
client = cloudflare.Cloudflare(api_token=token, base_url=base, max_retries=0)
pcaps = client.magic_transit.pcaps

created = pcaps.create(
    account_id=account,
    colo_name="ORD",
    destination_conf=dest,
    system="magic-transit",
    time_limit=300,
    type="full",
    packet_limit=1000,
    filter_v1={"protocol": 17, "destination_port": 53},
)
assert len(created.id) == 32, created
# pending, or already running if the agent acknowledged before the answer was written.
assert created.status in ("pending", "running"), created
assert created.colo_name == "ORD", created

# The simulated agent acknowledges at once: the capture runs.
for _ in range(100):
    got = pcaps.get(created.id, account_id=account)
    if got.status == "running":
        break
    time.sleep(0.05)
assert got.status == "running", got
listed = [p.id for p in pcaps.list(account_id=account)]
assert listed == [created.id], listed

pcaps.stop(created.id, account_id=account)  # no body expected (cast to None)
for _ in range(100):
    got = pcaps.get(created.id, account_id=account)
    if got.status == "success":
        break
    time.sleep(0.05)
assert got.status == "success", got
assert got.stop_requested, got

# A look-back capture: answered at once from the rings (the simulated node's is empty), then
# downloaded as classic pcap, which is what the SDK asks for.
simple = pcaps.create(
    account_id=account,
    system="magic-transit",
    time_limit=60,
    type="simple",
    packet_limit=100,
    filter_v1={"protocol": 17},
)
assert simple.status == "success", simple
assert simple.type == "simple", simple
got_simple = pcaps.get(simple.id, account_id=account)
assert got_simple.status == "success" and got_simple.type == "simple", got_simple
assert simple.id in [p.id for p in pcaps.list(account_id=account)]
data = pcaps.download.get(simple.id, account_id=account).read()
# Classic pcap, nanosecond timestamps (magic 0xa1b23c4d, little-endian), no packet.
assert data[:4] == bytes.fromhex("4d3cb2a1") and len(data) == 24, data[:32]

# Bucket ownership: add, find the challenge file, validate, list, delete.
own = pcaps.ownership.create(account_id=account, destination_conf=dest)
assert own.status == "pending" and own.filename.startswith("ownership-challenge-"), own
with open(os.path.join(dest[len("file://"):], own.filename)) as f:
    challenge = f.read().strip()
ok = pcaps.ownership.validate(
    account_id=account, destination_conf=dest, ownership_challenge=challenge
)
assert ok.status == "success" and ok.validated, ok
owned = [o.id for o in pcaps.ownership.get(account_id=account)]
assert owned == [own.id], owned
pcaps.ownership.delete(own.id, account_id=account)
assert not list(pcaps.ownership.get(account_id=account) or [])

# Errors arrive as the SDK's exceptions, with the envelope's errors.
try:
    pcaps.create(account_id=account, colo_name="nowhere", destination_conf=dest,
                 system="magic-transit", time_limit=300, type="full")
    sys.exit("a capture on no node was accepted")
except cloudflare.BadRequestError as e:
    bad = e.body
try:
    cloudflare.Cloudflare(api_token="ecp_wrong", base_url=base, max_retries=0) \
        .magic_transit.pcaps.list(account_id=account)
    sys.exit("a wrong token was accepted")
except cloudflare.AuthenticationError as e:
    unauth = e.status_code

print(json.dumps({"id": created.id, "simple": simple.id, "simple_bytes": len(data), "packets": got.packets_captured, "bad": bad,
                  "unauthenticated": unauth}))
