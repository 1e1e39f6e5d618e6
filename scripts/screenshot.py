"""Take the README's screenshot of the team inbox: docs/screenshot.png.

Starts the app on a throw-away embedded PostgreSQL, seeds a small coffee shop's support inbox
through the services (as the product itself would), signs in with Chromium and shoots.

    .venv/bin/python scripts/screenshot.py [--out docs/screenshot.png] [--width 1440 --height 900]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut import bootstrap
from whatwut.accounts import service as accounts
from whatwut.accounts.models import User
from whatwut.bots import service as bots
from whatwut.bots.models import AiAgent
from whatwut.bots.schemas import AgentMessageCreate, AiAgentCreate, SentimentIn, Source
from whatwut.canned_responses import service as canned
from whatwut.canned_responses.schemas import CannedResponseCreate
from whatwut.contacts import service as contacts
from whatwut.context import AppContext
from whatwut.conversations import service as conversations
from whatwut.conversations.schemas import CreateMessage, UpdateConversation
from whatwut.db.embedded import stop_embedded
from whatwut.db.engine import transaction
from whatwut.inboxes import service as inboxes
from whatwut.labels import service as labels
from whatwut.labels.schemas import LabelCreate
from whatwut.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
EMAIL = "ana@brisa.coffee"
PASSWORD = "screenshot-only-password"

LABELS = {
    "order": "#10b981",
    "vip": "#8b5cf6",
    "billing": "#f59e0b",
    "bug": "#ef4444",
    "wholesale": "#3b82f6",
}
CANNED = {
    "thanks": "Thanks for reaching out! Is there anything else I can help you with?",
    "tracking": "You can follow your parcel live here: https://track.brisa.coffee/",
    "hours": "We answer on WhatsApp every day from 8:00 to 20:00 (CET).",
}

# (speaker, text, minutes ago, delivery status); speaker: "in", "out:<agent>", "note:<agent>", "bot" (the AI
# agent's answer), "handoff" (the AI agent hands the conversation to people)
Line = tuple[str, str, float, str]


@dataclass
class Story:
    name: str
    phone: str
    inbox: str
    lines: list[Line]
    assignee: str | None = None
    labels: list[str] = field(default_factory=list)
    status: str = "open"
    priority: str = "none"
    #: Answered first by the AI agent: its lines' sources (by line index) and the customers' moods.
    sources: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    sentiments: dict[int, float] = field(default_factory=dict)


STORIES = [
    Story(
        "Maria Gonzalez",
        "+34612345678",
        "WhatsApp Support",
        [
            (
                "in",
                "Hi! I ordered the Ethiopia Guji beans last Tuesday (order #4411). How long does delivery "
                "to Valencia usually take?",
                46,
                "",
            ),
            (
                "bot",
                "Orders to mainland Spain arrive 2 to 4 working days after dispatch [1]. You can follow "
                "yours live from the tracking link in your shipping email [2].",
                45.5,
                "read",
            ),
            (
                "in",
                "The tracking hasn't moved since Friday though 😕 Can I talk to a person please?",
                41,
                "",
            ),
            ("handoff", "", 40.8, ""),
            (
                "out:Ana Lima",
                "Hi Maria, Ana here! The courier had your parcel stuck at the Valencia depot; it's moving "
                "again and arrives tomorrow before 14:00: https://track.brisa.coffee/4411",
                24,
                "read",
            ),
            (
                "note:Ana Lima",
                "Asked the courier to prioritise it. Maria is a subscriber since 2023.",
                23,
                "sent",
            ),
            ("in", "Amazing, thank you so much Ana!", 1.5, ""),
        ],
        assignee="Ana Lima",
        labels=["order", "vip"],
        priority="high",
        sources={1: [("shipping.md", "Delivery times"), ("shipping.md", "Tracking an order")]},
        sentiments={0: 0.1, 2: -0.42, 6: 0.88},
    ),
    Story(
        "Kwame Mensah",
        "+233241234567",
        "WhatsApp Support",
        [
            ("in", "My grinder makes a clicking noise after the firmware update", 52, ""),
            (
                "out:Ben Okafor",
                "Could you try holding the power button for 10 seconds to reset it?",
                30,
                "read",
            ),
            ("in", "Thanks, the grinder works now!", 6, ""),
        ],
        assignee="Ben Okafor",
    ),
    Story(
        "Priya Sharma",
        "+919876543210",
        "WhatsApp Sales",
        [
            ("in", "Hello! Do you offer wholesale pricing for cafés?", 25, ""),
            ("in", "We would need about 20 kg a month, mostly espresso blends.", 18, ""),
        ],
        labels=["wholesale"],
        status="pending",
    ),
    Story(
        "Lucas Martin",
        "+33612345678",
        "WhatsApp Support",
        [("in", "The app crashes when I try to pause my subscription", 64, "")],
        labels=["bug"],
    ),
    Story(
        "Aiko Tanaka",
        "+819012345678",
        "Website chat",
        [
            ("in", "I was charged twice for order #4378", 230, ""),
            (
                "out:Chloé Martin",
                "You're right, sorry! Your refund has been processed and will show in 3 to 5 days.",
                180,
                "sent",
            ),
        ],
        assignee="Chloé Martin",
        labels=["billing"],
    ),
    Story(
        "Jonas Weber",
        "+4915123456789",
        "WhatsApp Sales",
        [("in", "Is the Kenya AA still available in 1 kg bags?", 320, "")],
    ),
    Story(
        "Sofia Rossi",
        "+393123456789",
        "WhatsApp Support",
        [
            ("in", "Could you send me the invoice for March?", 1500, ""),
            ("out:Ana Lima", "Here it is! Let me know if you need it in another format.", 1440, "read"),
        ],
        assignee="Ana Lima",
        labels=["billing"],
    ),
    Story(
        "Omar Haddad",
        "+971501234567",
        "WhatsApp Support",
        [
            ("in", "Do you ship to Dubai?", 2900, ""),
            ("out:Ben Okafor", "We do, in 3 to 5 days.", 2880, "read"),
        ],
        assignee="Ben Okafor",
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def seed(settings: Settings) -> tuple[int, int]:
    """The account, its people, inboxes, labels, canned responses and conversations."""
    context = AppContext.create(settings)
    try:
        async with transaction(context.sessionmaker) as session:
            account = await accounts.create_account(session, "Brisa Coffee Roasters")
            people: dict[str, User] = {}
            for name, email in (
                ("Ana Lima", EMAIL),
                ("Ben Okafor", "ben@brisa.coffee"),
                ("Chloé Martin", "chloe@brisa.coffee"),
            ):
                user = await accounts.create_user(session, email=email, name=name, password=PASSWORD)
                await accounts.add_member(session, account, user, "administrator")
                people[name] = user
            ana = people["Ana Lima"]
            boxes = {}
            for name, channel in (
                ("WhatsApp Support", "whatsapp_cloud"),
                ("WhatsApp Sales", "whatsapp_web"),
                ("Website chat", "api"),
            ):
                inbox = await inboxes.add_inbox(
                    session,
                    context.secrets,
                    account.id,
                    name=name,
                    channel_type=channel,
                    settings={},
                    enable_auto_assignment=False,
                )
                boxes[name] = inbox.id
            for title, color in LABELS.items():
                await labels.create_label(
                    session, account.id, LabelCreate(title=title, color=color), actor_user_id=ana.id
                )
            for code, content in CANNED.items():
                await canned.create_canned_response(
                    session,
                    account.id,
                    CannedResponseCreate(short_code=code, content=content),
                    actor_user_id=ana.id,
                )
            first_conversation = 0
            backdate: list[tuple[int, float]] = []
            # Oldest story first, so display ids grow with recency as they would in real life.
            wacanda, _key, _secret = await bots.create_agent(
                session,
                context,
                account.id,
                AiAgentCreate(name="Wacanda", webhook_url="http://127.0.0.1:3001/webhooks/whatwut"),
                actor_user_id=ana.id,
            )
            for story in reversed(STORIES):
                bot = wacanda if story.sources else None
                if bot is not None:  # the AI agent answers this inbox's new conversations first
                    await bots.set_inbox_agent(
                        session, account.id, boxes[story.inbox], bot.id, actor_user_id=ana.id
                    )
                conversation_id = await tell(
                    session, account.id, boxes[story.inbox], story, people, backdate, bot
                )
                first_conversation = conversation_id
            # Screenshot-only time travel: the story happened over the last two days, not this second.
            for message_id, minutes in backdate:
                await session.execute(
                    text("UPDATE messages SET created_at = now() - make_interval(secs => :s) WHERE id = :id"),
                    {"s": minutes * 60, "id": message_id},
                )
            await session.execute(
                text(
                    "UPDATE conversations c SET last_activity_at = m.latest, created_at = m.earliest FROM "
                    "(SELECT conversation_id, max(created_at) FILTER (WHERE NOT private) AS latest, "
                    "min(created_at) AS earliest FROM messages GROUP BY conversation_id) m "
                    "WHERE m.conversation_id = c.id AND c.account_id = :account"
                ),
                {"account": account.id},
            )
            return account.id, first_conversation
    finally:
        await context.close()


async def tell(
    session: AsyncSession,
    account_id: int,
    inbox_id: int,
    story: Story,
    people: dict[str, User],
    backdate: list[tuple[int, float]],
    bot: AiAgent | None = None,
) -> int:
    """One customer's conversation, line by line, as it would have happened."""
    handoff: tuple[int, float] | None = None
    _contact, contact_inbox = await contacts.find_or_create_by_source(
        session, account_id, inbox_id, story.phone.lstrip("+"), name=story.name, phone_number=story.phone
    )
    conversation_id = 0

    def agent(name: str) -> conversations.Agent:
        return conversations.Agent(
            account_id=account_id, user_id=people[name].id, name=name, role="administrator"
        )

    for index, (speaker, content, minutes, status) in enumerate(story.lines):
        if speaker == "in":
            message = await conversations.record_incoming_message(
                session,
                account_id=account_id,
                inbox_id=inbox_id,
                contact_inbox=contact_inbox,
                content=content,
                source_id=f"wamid.{uuid.uuid4().hex}",
            )
            assert message is not None
            conversation_id = message.conversation_id
            backdate.append((message.id, minutes))
            if bot is not None and index in story.sentiments:
                await bots.record_sentiment(
                    session, bot, conversation_id, message.id, SentimentIn(score=story.sentiments[index])
                )
            if index == 0 and bot is None:
                await set_the_scene(session, agent, conversation_id, story, people)
            continue
        if speaker == "bot" and bot is not None:
            answer = await bots.post_message(
                session,
                bot,
                conversation_id,
                AgentMessageCreate(
                    content=content,
                    sources=[
                        Source(document=document, heading=heading, number=number)
                        for number, (document, heading) in enumerate(story.sources[index], start=1)
                    ],
                    confidence=0.91,
                ),
            )
            backdate.append((answer.id, minutes))
            if status and status != answer.status:
                await conversations.update_delivery_status(
                    session, account_id=account_id, message_id=answer.id, status=status
                )
            continue
        if speaker == "handoff" and bot is not None:
            before = await session.scalar(
                text("SELECT max(id) FROM messages WHERE conversation_id = :c"), {"c": conversation_id}
            )
            await bots.change_status(session, bot, conversation_id, "open", "human_request", None)
            await set_the_scene(session, agent, conversation_id, story, people)
            handoff = (int(before or 0), minutes)
            continue
        kind, _, who = speaker.partition(":")
        out = await conversations.create_message(
            session,
            agent(who),
            conversation_id,
            CreateMessage(content=content, private=kind == "note"),
            [],
            storage=None,
        )
        backdate.append((out.id, minutes))
        if kind == "out" and status and status != out.status:
            await conversations.update_delivery_status(
                session, account_id=account_id, message_id=out.id, status=status
            )
    # Activity lines written along the way sit just after the message that caused them: triage after
    # the first message, or the handoff's lines after the customer asked for a person.
    scene_from, scene_at = handoff or (2**62, 0.0)
    backdate_activity = text(
        "UPDATE messages SET created_at = now() - make_interval(secs => :s) "
        "WHERE conversation_id = :c AND message_type = 'activity' AND id > :after AND id <= :upto"
    )
    await session.execute(
        backdate_activity,
        {"s": story.lines[0][2] * 60 - 15, "c": conversation_id, "after": 0, "upto": scene_from},
    )
    if handoff:
        await session.execute(
            backdate_activity, {"s": scene_at * 60, "c": conversation_id, "after": scene_from, "upto": 2**62}
        )
    return conversation_id


async def set_the_scene(
    session: AsyncSession,
    agent: Callable[[str], conversations.Agent],
    conversation_id: int,
    story: Story,
    people: dict[str, User],
) -> None:
    """Assignee, labels, status and priority, set when the first message arrives (as triage does)."""
    actor = agent(story.assignee or "Ana Lima")
    if story.assignee:
        await conversations.assign(
            session,
            actor,
            conversation_id,
            assignee_id=people[story.assignee].id,
            change_assignee=True,
            team_id=None,
            change_team=False,
        )
    if story.labels:
        await conversations.set_conversation_labels(session, actor, conversation_id, story.labels)
    if story.status != "open":
        await conversations.change_status(session, actor, conversation_id, story.status)
    if story.priority != "none":
        await conversations.update_conversation(
            session, actor, conversation_id, UpdateConversation(priority=story.priority)
        )


def shoot(url: str, account_id: int, conversation_id: int, out: Path, width: int, height: int) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(f"{url}/login")
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{url}/app/accounts/{account_id}/conversations")
        page.goto(f"{url}/app/accounts/{account_id}/conversations/{conversation_id}")
        page.wait_for_selector("body[data-live=on]")
        page.locator("#reply-content").fill("Happy to help! Enjoy your coffee")
        page.wait_for_timeout(300)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ww-shot-") as tmp:
        data_dir = Path(tmp)
        settings = Settings(  # type: ignore[call-arg]
            WHATWUT_DATA_DIR=str(data_dir),
            WHATWUT_SECRET_KEY="screenshot-" + uuid.uuid4().hex,
            WHATWUT_RUN_WORKER="false",
            WHATWUT_LOG_LEVEL="WARNING",
        )
        bootstrap.prepare(settings)
        try:
            account_id, conversation_id = asyncio.run(seed(settings))
            from whatwut.app import create_app

            port = free_port()
            server = uvicorn.Server(
                uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
            )
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            try:
                shoot(
                    f"http://127.0.0.1:{port}", account_id, conversation_id, args.out, args.width, args.height
                )
            finally:
                server.should_exit = True
                thread.join(timeout=15)
        finally:
            stop_embedded(data_dir)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
