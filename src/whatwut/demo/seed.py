"""Demo data for ``whatwut serve --demo``: grows as the product does. Must stay idempotent."""

from __future__ import annotations

from contextlib import suppress

from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.accounts import service as accounts
from whatwut.canned_responses import service as canned_responses
from whatwut.canned_responses.schemas import CannedResponseCreate
from whatwut.contacts import service as contacts
from whatwut.context import AppContext
from whatwut.conversations import service as conversations
from whatwut.inboxes import service as inboxes
from whatwut.kit.errors import Conflict
from whatwut.labels import service as labels
from whatwut.labels.schemas import LabelCreate

DEMO_LABELS = (
    ("billing", "#f5a623", "Payments, invoices and refunds"),
    ("shipping", "#4a90e2", "Deliveries and tracking"),
    ("vip", "#d0021b", "Customers who get priority"),
)
DEMO_CANNED_RESPONSES = (
    ("hello", "Hi! Thanks for reaching out. How can I help you today?"),
    ("thanks", "Thank you for contacting us. Have a great day!"),
)


async def seed_demo_account(session: AsyncSession, context: AppContext, account_id: int) -> None:
    """Add the demo's inboxes, agents and sample conversations (each domain adds its part)."""
    await _seed_website_inbox_labels_and_replies(session, context, account_id)
    await _seed_sample_conversations(session, account_id)
    await _seed_whatsapp_sandbox(session, context, account_id)


async def _seed_website_inbox_labels_and_replies(
    session: AsyncSession, context: AppContext, account_id: int
) -> None:
    """An API inbox "Website" with the account's administrators as members, three labels and
    two canned responses. Whatever already exists (by name) is left as it is."""
    inbox = await inboxes.find_inbox_by_name(session, account_id, "Website")
    if inbox is None:
        inbox = await inboxes.add_inbox(
            session, context, account_id, name="Website", channel_type="api", settings={}
        )
    members, _ = await accounts.list_members(session, account_id, limit=100)
    admins = {user.id for user, membership in members if membership.role == "administrator"}
    current = set(await inboxes.inbox_member_ids(session, inbox.id))
    if not admins <= current:
        await inboxes.set_members(session, account_id, inbox.id, current | admins, actor_user_id=None)
    for title, color, description in DEMO_LABELS:
        with suppress(Conflict):  # seeded before
            await labels.create_label(
                session,
                account_id,
                LabelCreate(title=title, color=color, description=description),
                actor_user_id=None,
            )
    for short_code, content in DEMO_CANNED_RESPONSES:
        with suppress(Conflict):  # seeded before
            await canned_responses.create_canned_response(
                session,
                account_id,
                CannedResponseCreate(short_code=short_code, content=content),
                actor_user_id=None,
            )


#: (source id, name, phone, messages): customers who wrote to the Website inbox.
DEMO_CUSTOMERS = (
    (
        "demo-maria",
        "Maria Gonzalez",
        "+34612345678",
        ("Hi! My order #4411 has not moved since Friday.", "Can you check the tracking for me?"),
    ),
    (
        "demo-joao",
        "João Silva",
        "+5511987654321",
        ("Oi! Quanto custa o frete expresso para São Paulo?",),
    ),
    (
        "demo-aiko",
        "Aiko Tanaka",
        "+819012345678",
        ("I was charged twice for my last invoice, can you refund one of them?",),
    ),
)


async def _seed_sample_conversations(session: AsyncSession, account_id: int) -> None:
    """A few open conversations so the inbox is not empty on first sign-in.

    Each message has a fixed source id, so a second ``--demo`` start stores nothing again.
    """
    inbox = await inboxes.find_inbox_by_name(session, account_id, "Website")
    if inbox is None:
        return
    for source_id, name, phone, messages in DEMO_CUSTOMERS:
        _contact, contact_inbox = await contacts.find_or_create_by_source(
            session, account_id, inbox.id, source_id, name=name, phone_number=phone
        )
        for index, text in enumerate(messages):
            await conversations.record_incoming_message(
                session,
                account_id=account_id,
                inbox_id=inbox.id,
                contact_inbox=contact_inbox,
                content=text,
                source_id=f"{source_id}-{index}",
            )


async def _seed_whatsapp_sandbox(session: AsyncSession, context: AppContext, account_id: int) -> None:
    """The "WhatsApp sandbox" Cloud API inbox (``whatwut serve --demo`` points it at its own port)."""
    from whatwut.channels.whatsapp.sandbox.service import ensure_sandbox_inbox, graph_url_for

    existing = await inboxes.find_inbox_by_name(session, account_id, "WhatsApp sandbox")
    graph_url = existing.settings.get("graph_url") if existing is not None else None
    await ensure_sandbox_inbox(
        session, context, account_id, graph_url=str(graph_url or graph_url_for("http://127.0.0.1:3000"))
    )
