"""The conversation list's filters as they travel in page URLs (and on to the service)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from urllib.parse import urlencode

STATUSES = ("open", "pending", "resolved", "snoozed", "all")
ASSIGNEE_TYPES = ("me", "unassigned", "all")


@dataclass(frozen=True)
class Filters:
    status: str = "open"
    assignee_type: str = "all"
    inbox_id: int | None = None
    label: str | None = None
    q: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        status: str | None,
        assignee_type: str | None,
        inbox_id: str | None,
        label: str | None,
        q: str | None,
    ) -> Filters:
        """Lenient on purpose: a hand-edited URL falls back to the default rather than erroring."""
        parsed_inbox = int(inbox_id) if inbox_id and inbox_id.isdigit() and len(inbox_id) < 19 else None
        return cls(
            status=status if status in STATUSES else "open",
            assignee_type=assignee_type if assignee_type in ASSIGNEE_TYPES else "all",
            inbox_id=parsed_inbox,
            label=(label or "").strip()[:64] or None,
            q=(q or "").strip()[:200] or None,
        )

    def params(self, **overrides: object) -> dict[str, str]:
        values: dict[str, object] = asdict(self)
        values.update(overrides)
        return {key: str(value) for key, value in values.items() if value not in (None, "")}

    def query(self, **overrides: object) -> str:
        """``?status=open&assignee_type=me…`` for links, with ``overrides`` applied."""
        params = self.params(**overrides)
        return "?" + urlencode(params) if params else ""

    def hidden_except(self, name: str) -> list[tuple[str, str]]:
        """The other filters, as hidden fields for a form that changes ``name``."""
        return [(key, value) for key, value in self.params().items() if key != name]
