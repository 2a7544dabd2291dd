"""The customer key (contract ``customer_key``): one pseudonym per customer across all tickets.

``customer_key = hex(HMAC-SHA256(HELPDESK_CUSTOMER_KEY_SECRET, value))`` where ``value`` is the
customer's phone normalised to E.164 (``+86`` when it has no country code), else the email
lower-cased, else the channel's ``customer.id``. The same customer gives the same key on every
ticket and through every spelling of the phone (``138 1234 5678``, ``+86-138-1234-5678``, full-width
digits); without the secret nobody can recover the contact from the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

import phonenumbers

DEFAULT_REGION = "CN"  # +86


def normalise_phone(phone: str, region: str = DEFAULT_REGION) -> str:
    """E.164 (``+8613812345678``); a number libphonenumber cannot parse keeps ``+`` and its digits."""
    text = unicodedata.normalize("NFKC", phone).strip()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and phonenumbers.is_possible_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    digits = re.sub(r"\D", "", text)
    return ("+" + digits) if text.startswith("+") else digits


def normalise_email(email: str) -> str:
    return unicodedata.normalize("NFKC", email).strip().lower()


def key_material(*, phone: str | None, email: str | None, customer_id: str | None) -> str | None:
    """What the key is computed over: the normalised phone, else the email, else the id."""
    if phone and phone.strip():
        return normalise_phone(phone)
    if email and email.strip():
        return normalise_email(email)
    if customer_id and customer_id.strip():
        return unicodedata.normalize("NFKC", customer_id).strip()
    return None


def customer_key(*, secret: str, phone: str | None = None, email: str | None = None,
                 customer_id: str | None = None) -> str | None:
    """Lower-case hex HMAC-SHA256 of ``key_material``; None when the customer gave none of the three."""
    material = key_material(phone=phone, email=email, customer_id=customer_id)
    if material is None:
        return None
    return hmac.new(secret.encode(), material.encode(), hashlib.sha256).hexdigest()


def address_key(*, secret: str, address: str) -> str:
    """A recipient's address (phone or email) as the same keyed hash, for per-address rate limits."""
    material = normalise_email(address) if "@" in address else normalise_phone(address)
    return hmac.new(secret.encode(), material.encode(), hashlib.sha256).hexdigest()
