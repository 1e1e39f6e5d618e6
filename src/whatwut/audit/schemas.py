"""API shapes of the audit log."""

from __future__ import annotations

from datetime import datetime

from whatwut.kit.schemas import Output


class AuditLogOut(Output):
    id: int
    action: str
    subject_type: str
    subject_id: int | None
    actor_user_id: int | None
    changes: dict[str, object]
    ip_address: str | None
    created_at: datetime
