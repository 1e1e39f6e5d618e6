"""WhatsApp channels: the official Cloud API (``cloud/``) and the instances every WhatsApp inbox has."""
