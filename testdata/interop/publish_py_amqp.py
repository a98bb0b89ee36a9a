#!/usr/bin/env python3
"""Publish warren jobs from Python with py-amqp (Celery's AMQP client).

A producer written from docs/wire-format.md: content type
application/msgpack, the job id as message_id, the job type as type, a
timestamp in seconds, delivery mode 2, the payload alone as the MessagePack
body, published with confirms and the mandatory flag. Every job also carries
headers of every type py-amqp writes (see HEADERS), warren-attempt, and a
warren-deadline in Unix milliseconds, which py-amqp writes as field type 'L'.

worker/python_test.go runs it. Usage:

    publish_py_amqp.py URL EXCHANGE DEADLINE_MS JOBS_JSON

JOBS_JSON is a list of {"id", "type", "routing_key", "payload"} objects (the
payload an object, to which published_at, a datetime, is added); a job with
"unreadable": true also carries a header nested 40 tables deep, which
RabbitMQ accepts and amqp091-go does not read (it reads 32 levels).

Needs the Debian packages python3-amqp and python3-msgpack (scripts/deps.sh).
"""

import json
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal
from urllib.parse import unquote, urlparse

import amqp
import msgpack

# Headers of every type py-amqp writes, with the field type it picks.
HEADERS = {
    "small": 7,  # 'I'
    "big": 2**40 + 1,  # 'L': any integer beyond 32 bits
    "negative": -5,  # 'I'
    "very-negative": -(2**40),  # 'L'
    "float": 1.5,  # 'd'
    "flag": True,  # 't'
    "text": "h\u00e9llo",  # 'S'
    "raw": b"\x00\x01\xff",  # 'S' too: py-amqp writes bytes as a long string
    "nothing": None,  # 'V'
    "when": datetime(2026, 11, 24, 10, 0, 0, tzinfo=timezone.utc),  # 'T', seconds
    "price": Decimal("12.34"),  # 'D': scale 2, value 1234
    "nested": {"k": "v", "n": 2**40, "list": [1, "two", None]},  # 'F'
    "list": [1, 2**40, "x", True],  # 'A'
}


def nested(depth):
    value = {"leaf": None}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def connect(url):
    u = urlparse(url)
    if u.scheme != "amqp":
        sys.exit(f"publish_py_amqp.py: only amqp:// URLs, not {u.scheme}://")
    vhost = unquote(u.path[1:]) if len(u.path) > 1 else "/"
    conn = amqp.Connection(
        host=f"{u.hostname or '127.0.0.1'}:{u.port or 5672}",
        userid=unquote(u.username or "guest"),
        password=unquote(u.password or "guest"),
        virtual_host=vhost,
        confirm_publish=True,  # basic_publish waits for the broker's ack
        connect_timeout=10,
    )
    conn.connect()
    return conn


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    url, exchange, deadline_ms, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    conn = connect(url)
    try:
        ch = conn.channel()
        for job in jobs:
            headers = dict(HEADERS)
            headers["warren-attempt"] = 1
            headers["warren-deadline"] = deadline_ms  # 'L'
            if job.get("unreadable"):
                headers["deep"] = nested(40)
            # A timezone-aware datetime: the MessagePack timestamp extension.
            payload = dict(job["payload"], published_at=datetime.now(timezone.utc))
            msg = amqp.Message(
                msgpack.packb(payload, use_bin_type=True, datetime=True),
                content_type="application/msgpack",
                message_id=job["id"],
                type=job["type"],
                timestamp=int(time.time()),  # seconds
                delivery_mode=2,
                app_id="py-producer",
                application_headers=headers,
            )
            # Unroutable: py-amqp raises on the broker's basic.return.
            ch.basic_publish(msg, exchange=exchange, routing_key=job["routing_key"], mandatory=True)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
