"""The official WhatsApp Business Cloud API: Meta's webhooks in, Graph API calls out."""
