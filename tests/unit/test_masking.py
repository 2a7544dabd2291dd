from hypothesis import given
from hypothesis import strategies as st

from shared.masking import mask_deep, mask_email, mask_phone, mask_text


def test_contract_examples():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_email("li.lei@example.com") == "l***@example.com"
    assert mask_phone("+86 138-1234-5678") == "+86 138****5678"
    assert mask_phone(None) is None and mask_email(None) is None


def test_text_masks_contacts_but_not_ticket_numbers_or_times():
    text = "工单20261123000001 客户 13812345678 / lilei@example.com 于 2026-11-23T09:30:00+08:00 来电，座机 010-12345678"
    masked = mask_text(text)
    assert "13812345678" not in masked and "138****5678" in masked
    assert "lilei@" not in masked and "l***@example.com" in masked
    assert "20261123000001" in masked and "2026-11-23T09:30:00+08:00" in masked
    assert "12345678" not in masked.replace("20261123000001", "")


def test_mask_deep_walks_json():
    assert mask_deep({"a": ["call 13900001111"], "b": 1, "c": {"d": "x@y.cn"}}) == {
        "a": ["call 139****1111"], "b": 1, "c": {"d": "x***@y.cn"}}


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True), st.text(alphabet="abc 工单，。", max_size=20))
def test_any_mobile_in_text_is_masked(phone, filler):
    out = mask_text(f"{filler}{phone}{filler}")
    assert phone not in out and f"{phone[:3]}****{phone[-4:]}" in out


@given(st.from_regex(r"[a-z][a-z0-9.]{0,15}@[a-z]{1,10}\.(com|cn|net)", fullmatch=True))
def test_any_email_keeps_first_letter_and_domain(email):
    out = mask_email(email)
    local, domain = email.split("@")
    assert out == f"{local[0]}***@{domain}"
    assert mask_text(f"mail: {email}") == f"mail: {out}"


@given(st.text(max_size=60))
def test_masking_is_idempotent(text):
    assert mask_text(mask_text(text)) == mask_text(text)


def test_mask_deep_leaves_identifiers_alone_unless_they_are_contacts():
    data = {"external_id": "chat-a13812345678b", "order_no": "SO13812345678", "description": "call 13812345678",
            "id": "13812345678", "actor": "lilei@example.com"}
    assert mask_deep(data) == {"external_id": "chat-a13812345678b", "order_no": "SO13812345678",
                               "description": "call 138****5678", "id": "138****5678", "actor": "l***@example.com"}
