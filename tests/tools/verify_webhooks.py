#!/usr/bin/env python3
"""Verifies webhook deliveries with the `standardwebhooks` library (PyPI),
an implementation of Standard Webhooks that we did not write.

Reads JSON lines on stdin, one delivery each:

    {"secrets": ["whsec_...", ...], "id": "...", "timestamp": "...",
     "signature": "v1,... v1,...", "body": "<the raw body, exactly as sent>"}

and checks the delivery with `Webhook(secret).verify(body, headers)` for
EACH secret of the list on its own (a receiver holding only that secret
must accept it: with two, that is a rotation). The library also checks the
timestamp (within 5 minutes of now), so run it right after the deliveries.

Exit status 0 when every delivery verifies with every secret; 1 naming the
first failure otherwise; 2 on unusable input.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook


def main() -> int:
    checked = 0
    for n, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            secrets, body = d["secrets"], d["body"]
            headers = {
                "webhook-id": d["id"],
                "webhook-timestamp": d["timestamp"],
                "webhook-signature": d["signature"],
            }
        except (ValueError, KeyError, TypeError) as e:
            print(f"verify_webhooks: line {n}: unusable input: {e!r}", file=sys.stderr)
            return 2
        if not isinstance(secrets, list) or not secrets:
            print(f"verify_webhooks: line {n}: no secrets", file=sys.stderr)
            return 2
        for i, secret in enumerate(secrets):
            try:
                Webhook(secret).verify(body.encode("utf-8"), headers)
            except Exception as e:  # the library raises more than its own error type
                print(
                    f"verify_webhooks: line {n}: webhook-id {d['id']!r} does not verify "
                    f"with secret #{i + 1} of {len(secrets)}: {type(e).__name__}: {e}",
                    file=sys.stderr,
                )
                return 1
        checked += 1
    if checked == 0:
        print("verify_webhooks: no delivery on stdin", file=sys.stderr)
        return 2
    print(f"verify_webhooks: {checked} deliveries verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
