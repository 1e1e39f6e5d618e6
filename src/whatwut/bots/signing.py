"""Signed outbound webhooks: ``X-WhatWut-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The MAC covers ``"{t}.{body}"``, so a receiver checks both the body and its freshness (a captured
delivery replayed later is refused), as Stripe's and Slack's webhooks do.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-WhatWut-Signature"
EVENT_HEADER = "X-WhatWut-Event"
EVENT_ID_HEADER = "X-WhatWut-Event-Id"
AGENT_HEADER = "X-WhatWut-Agent-Id"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"
