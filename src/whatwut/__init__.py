"""WhatWut: the team inbox for WhatsApp customer support."""

__version__ = "0.1.0"
