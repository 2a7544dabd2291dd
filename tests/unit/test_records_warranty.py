"""The warranty policy (三包), pure: unit and property tests over purchase dates and repair counts."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake import warranty
from services.intake.warranty import add_months, assess

POLICY = warranty.load()  # the shipped default
BOUGHT = date(2026, 3, 1)
ORDER = ["return", "exchange", "repair", "paid"]

dates = st.dates(min_value=date(2015, 1, 1), max_value=date(2035, 12, 31))
ages = st.integers(min_value=0, max_value=3000)
repairs = st.integers(min_value=0, max_value=10)
products = st.sampled_from([None, "手机", "笔记本电脑", "冰箱", "电源适配器", "unknown gadget"])


def at(days: int, **kw) -> warranty.Warranty:
    return assess(POLICY, purchase_date=BOUGHT, on=BOUGHT + timedelta(days=days), **kw)


@pytest.mark.parametrize(("days", "entitlement"), [(0, "return"), (7, "return"), (8, "exchange"), (15, "exchange"),
                                                   (16, "repair"), (364, "repair"), (365, "paid"), (900, "paid")])
def test_default_follows_sanbao(days, entitlement):
    w = at(days)  # no product line: default 12 months
    assert w.entitlement == entitlement
    assert w.in_warranty is (entitlement != "paid")
    assert w.days_since_purchase == days and w.warranty_months == 12


def test_two_failed_repairs_within_warranty_mean_exchange_or_refund():
    assert at(100, failed_repairs=1).entitlement == "repair"
    w = at(100, failed_repairs=2)
    assert w.entitlement == "exchange" and "failed repairs" in w.reason and w.failed_repairs == 2
    assert at(400, failed_repairs=5).entitlement == "paid"  # out of warranty: repairs do not help


def test_product_lines_set_the_months():
    assert at(500, product="联想笔记本电脑").entitlement == "repair"  # computer: 24 months
    assert at(500, product="联想笔记本电脑").product_line == "computer"
    assert at(200, product="电源适配器").entitlement == "paid"  # accessory: 6 months
    prefixed = warranty.parse({"lines": [{"name": "router", "months": 3, "model_prefixes": ["RT-"]}]})
    assert assess(prefixed, purchase_date=BOUGHT, on=BOUGHT + timedelta(days=100), model="rt-9000").entitlement == "paid"


def test_month_arithmetic_clamps_to_the_month_end():
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(date(2026, 11, 15), 14) == date(2028, 1, 15)


def test_bad_file_names_the_key(tmp_path):
    bad = tmp_path / "w.toml"
    bad.write_text('return_days = 7\nexchange_days = 3\n', encoding="utf-8")
    with pytest.raises(warranty.WarrantyPolicyError, match="exchange_days"):
        warranty.load(bad)
    bad.write_text('[[lines]]\nname = "x"\nmonths = -1\n', encoding="utf-8")
    with pytest.raises(warranty.WarrantyPolicyError, match=r"lines\.0\.months"):
        warranty.load(bad)
    bad.write_text('retrun_days = 7\n', encoding="utf-8")
    with pytest.raises(warranty.WarrantyPolicyError, match="retrun_days"):
        warranty.load(bad)


def test_a_fault_before_purchase_is_refused():
    with pytest.raises(ValueError, match="purchase_date"):
        assess(POLICY, purchase_date=BOUGHT, on=BOUGHT - timedelta(days=1))


@given(bought=dates, age=ages, failed=repairs, product=products)
def test_in_warranty_exactly_until_the_period_ends(bought, age, failed, product):
    on = bought + timedelta(days=age)
    w = assess(POLICY, purchase_date=bought, on=on, product=product, failed_repairs=failed)
    assert w.warranty_ends == add_months(bought, w.warranty_months)
    if age > POLICY.exchange_days:
        assert w.in_warranty is (on < w.warranty_ends)
    assert (w.entitlement == "paid") is (not w.in_warranty)


@given(bought=dates, a=ages, b=ages, product=products)
def test_entitlement_only_narrows_as_the_unit_ages(bought, a, b, product):
    """Without failed repairs: return -> exchange -> repair -> paid, never back."""
    younger, older = sorted((a, b))
    w1 = assess(POLICY, purchase_date=bought, on=bought + timedelta(days=younger), product=product)
    w2 = assess(POLICY, purchase_date=bought, on=bought + timedelta(days=older), product=product)
    assert ORDER.index(w1.entitlement) <= ORDER.index(w2.entitlement)


@given(bought=dates, age=ages, failed=repairs, product=products)
def test_failed_repairs_never_make_it_worse_and_two_stop_free_repair(bought, age, failed, product):
    on = bought + timedelta(days=age)
    base = assess(POLICY, purchase_date=bought, on=on, product=product)
    w = assess(POLICY, purchase_date=bought, on=on, product=product, failed_repairs=failed)
    assert ORDER.index(w.entitlement) <= ORDER.index(base.entitlement)
    if failed >= POLICY.failed_repairs_limit and w.in_warranty:
        assert w.entitlement in ("return", "exchange")
    if age <= POLICY.return_days:
        assert w.entitlement == "return"
    elif age <= POLICY.exchange_days:
        assert w.entitlement == "exchange"


def test_intake_refuses_to_build_with_a_bad_warranty_file(tmp_path, monkeypatch):
    from services.intake import records
    from services.intake.app import build_runtime

    bad = tmp_path / "warranty.toml"
    bad.write_text("default_months = 'long'\n", encoding="utf-8")
    monkeypatch.setenv("INTAKE_WARRANTY_FILE", str(bad))
    with pytest.raises(warranty.WarrantyPolicyError, match="default_months"):
        build_runtime()
    good = tmp_path / "mine.toml"
    good.write_text("default_months = 24\n", encoding="utf-8")
    monkeypatch.setenv("INTAKE_WARRANTY_FILE", str(good))
    assert records.warranty_policy().default_months == 24
