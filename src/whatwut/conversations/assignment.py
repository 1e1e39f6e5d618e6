"""Auto-assignment: round robin among an inbox's online members, as Chatwoot does.

The inbox row is locked while choosing, so two conversations created at the same moment in
one inbox go to two different agents instead of both to the "next" one.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.accounts.models import AccountUser
from whatwut.conversations.models import Conversation
from whatwut.inboxes import service as inboxes
from whatwut.inboxes.models import Inbox


async def choose_assignee(session: AsyncSession, *, account_id: int, inbox_id: int) -> int | None:
    """The next online member after the last one chosen, skipping agents at their open limit.

    Records the choice on the inbox; ``None`` (nobody eligible) leaves the conversation unassigned.
    """
    inbox = (
        await session.execute(
            select(Inbox)
            .where(Inbox.id == inbox_id, Inbox.account_id == account_id)
            # NO KEY UPDATE: still one chooser at a time, but no conflict with the key-share locks
            # that inserts referencing the inbox take (contact_inboxes, conversations); FOR UPDATE
            # deadlocked against them and the display-id lock under concurrent new customers.
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if inbox is None or not inbox.enable_auto_assignment:
        return None
    members = await inboxes.inbox_member_ids(session, inbox.id)
    if not members:
        return None
    online = (
        await session.execute(
            select(AccountUser.user_id).where(
                AccountUser.account_id == account_id,
                AccountUser.user_id.in_(members),
                AccountUser.availability == "online",
            )
        )
    ).scalars()
    eligible = sorted(set(online))
    if inbox.max_open_per_agent is not None and eligible:
        rows = await session.execute(
            select(Conversation.assignee_id, func.count())
            .where(
                Conversation.inbox_id == inbox.id,
                Conversation.status == "open",
                Conversation.assignee_id.in_(eligible),
            )
            .group_by(Conversation.assignee_id)
        )
        open_counts = {int(user_id): int(count) for user_id, count in rows.all() if user_id is not None}
        eligible = [uid for uid in eligible if open_counts.get(uid, 0) < inbox.max_open_per_agent]
    if not eligible:
        return None
    last = inbox.last_assigned_user_id or 0
    chosen = next((uid for uid in eligible if uid > last), eligible[0])
    inbox.last_assigned_user_id = chosen
    return chosen
