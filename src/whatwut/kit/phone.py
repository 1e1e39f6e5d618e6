"""Phone numbers in E.164, the one form contacts and WhatsApp numbers are stored in."""

from __future__ import annotations

import phonenumbers

#: Longer input is not a phone number; refusing it early keeps the parser's work bounded.
MAX_PHONE_INPUT = 64


def to_e164(raw: str) -> str:
    """``"+55 11 98765-4321"`` → ``"+5511987654321"``; a ``ValueError`` saying why otherwise.

    Numbers must carry their country code (a leading ``+``): an account serves customers in
    many countries, so there is no default region to guess from.
    """
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > MAX_PHONE_INPUT:
        raise ValueError(f"must be at most {MAX_PHONE_INPUT} characters")
    if not value.startswith("+"):
        raise ValueError("must be in international format with the country code, e.g. +5511987654321")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def wa_id_to_e164(wa_id: str) -> str | None:
    """A WhatsApp id (digits, no ``+``) as E.164, or ``None`` when it is not a valid number."""
    digits = wa_id.strip().lstrip("+")
    if not digits.isdigit():
        return None
    try:
        return to_e164("+" + digits)
    except ValueError:
        return None
