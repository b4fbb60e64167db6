"""A burst of API writes, each noted before it is sent and once acknowledged.

Usage: python burst_writes.py ENDPOINT VPC PREFIX NOTES. Creates target groups PREFIX-0,
PREFIX-1, ... one after another, writing `sent NAME` and then `ack NAME` (flushed) to NOTES,
until a call fails (elbd was killed), then exits 0.
"""

import sys

import boto3
from botocore.config import Config

endpoint, vpc, prefix, notes = sys.argv[1:5]
config = Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5)
session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
elbv2 = session.client("elbv2", endpoint_url=endpoint, config=config)

with open(notes, "w") as out:
    i = 0
    while True:
        name = f"{prefix}-{i}"
        out.write(f"sent {name}\n")
        out.flush()
        try:
            elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")
        except Exception as e:  # the process was killed: the burst ends
            print(f"{name}: {e}")
            break
        out.write(f"ack {name}\n")
        out.flush()
        i += 1
