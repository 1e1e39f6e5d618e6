"""Messaging channels: how conversations reach customers (WhatsApp Cloud API, WhatsApp Web, sandbox)."""
