"""Wacanda as WhatWut's bot: signed webhooks in, answers, sentiment and handoffs out (Agent API)."""
