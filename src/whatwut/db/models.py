"""Imports every domain's tables so Alembic sees the whole schema."""

from whatwut.accounts.models import AccessToken, Account, AccountUser, User
from whatwut.audit.models import AuditLog
from whatwut.bots.models import AgentConversation, AiAgent, AiAgentDelivery, AiAgentInbox
from whatwut.canned_responses.models import CannedResponse
from whatwut.channels.whatsapp.models import (
    WhatsAppContact,
    WhatsAppInboundEvent,
    WhatsAppInstance,
    WhatsAppMessage,
)
from whatwut.channels.whatsapp.template_models import WhatsAppReadReceipt, WhatsAppTemplate
from whatwut.contacts.models import Contact, ContactInbox
from whatwut.conversations.models import Attachment, Conversation, ConversationRead, Message
from whatwut.db.base import Base
from whatwut.inboxes.models import Inbox, InboxMember
from whatwut.labels.models import Label
from whatwut.realtime.models import Event
from whatwut.teams.models import Team, TeamMember

__all__ = [
    "AccessToken",
    "Account",
    "AccountUser",
    "AgentConversation",
    "AiAgent",
    "AiAgentDelivery",
    "AiAgentInbox",
    "Attachment",
    "AuditLog",
    "Base",
    "CannedResponse",
    "Contact",
    "ContactInbox",
    "Conversation",
    "ConversationRead",
    "Event",
    "Inbox",
    "InboxMember",
    "Label",
    "Message",
    "Team",
    "TeamMember",
    "User",
    "WhatsAppContact",
    "WhatsAppInboundEvent",
    "WhatsAppInstance",
    "WhatsAppMessage",
    "WhatsAppReadReceipt",
    "WhatsAppTemplate",
]
