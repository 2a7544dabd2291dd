"""The warranty policy (三包, DOMAIN.md §8), pure: which entitlement a fault has on a given day.

``load`` reads ``INTAKE_WARRANTY_FILE`` (TOML; default ``warranty.toml`` beside this module) and
refuses a bad file naming the key; ``assess`` decides from the purchase date, the day the fault was
reported, the product line's warranty months and the unit's failed repairs.
"""

from __future__ import annotations

import calendar
import tomllib
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.events import Warranty

DEFAULT_FILE = Path(__file__).parent / "warranty.toml"


class WarrantyPolicyError(ValueError):
    """The warranty file is unusable; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Line(_Strict):
    name: str = Field(min_length=1, max_length=100)
    months: int = Field(ge=0, le=240)
    products: tuple[str, ...] = ()
    model_prefixes: tuple[str, ...] = ()

    def matches(self, product: str | None, model: str | None) -> bool:
        name = (product or "").casefold()
        if name and any(p.casefold() in name for p in self.products):
            return True
        return bool(model) and any(model.casefold().startswith(p.casefold()) for p in self.model_prefixes)


class WarrantyPolicy(_Strict):
    return_days: int = Field(7, ge=0, le=365)
    exchange_days: int = Field(15, ge=0, le=365)
    failed_repairs_limit: int = Field(2, ge=1, le=100)
    default_months: int = Field(12, ge=0, le=240)
    lines: tuple[Line, ...] = ()

    @model_validator(mode="after")
    def _ordered(self) -> WarrantyPolicy:
        if self.exchange_days < self.return_days:
            raise ValueError("exchange_days must be at least return_days")
        return self

    def line_for(self, product: str | None, model: str | None) -> tuple[str | None, int]:
        """The product line (name, warranty months) of a product / model; unmatched: the default."""
        for line in self.lines:
            if line.matches(product, model):
                return line.name, line.months
        return None, self.default_months


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months (the 31st becomes the month's last day)."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def assess(policy: WarrantyPolicy, *, purchase_date: date, on: date, product: str | None = None,
           model: str | None = None, failed_repairs: int = 0) -> Warranty:
    """The entitlement of a fault reported on ``on`` for a unit bought on ``purchase_date``.

    Return within ``return_days``, exchange within ``exchange_days``, then free repair while in
    warranty — except after ``failed_repairs_limit`` failed repairs within it (exchange or refund);
    out of warranty: paid repair.
    """
    if on < purchase_date:
        raise ValueError("purchase_date is after the day the fault was reported")
    line, months = policy.line_for(product, model)
    ends = add_months(purchase_date, months)
    days = (on - purchase_date).days
    in_warranty = on < ends
    facts = {"product_line": line, "warranty_months": months, "warranty_ends": ends, "days_since_purchase": days,
             "failed_repairs": failed_repairs}
    if days <= policy.return_days:
        return Warranty(in_warranty=True, entitlement="return", **facts,
                        reason=f"within {policy.return_days} days of purchase (三包 art. 9): return, exchange or repair")
    if days <= policy.exchange_days:
        return Warranty(in_warranty=True, entitlement="exchange", **facts,
                        reason=f"within {policy.exchange_days} days of purchase (三包 art. 10): exchange or repair")
    if in_warranty and failed_repairs >= policy.failed_repairs_limit:
        return Warranty(in_warranty=True, entitlement="exchange", **facts,
                        reason=f"{failed_repairs} failed repairs within the warranty (三包 art. 10): exchange or refund")
    if in_warranty:
        return Warranty(in_warranty=True, entitlement="repair", **facts,
                        reason=f"within the {months}-month warranty (until {ends.isoformat()}): free repair")
    return Warranty(in_warranty=False, entitlement="paid", **facts,
                    reason=f"the {months}-month warranty ended on {ends.isoformat()}: paid repair")


def parse(doc: dict, *, source: str = "warranty policy") -> WarrantyPolicy:
    try:
        return WarrantyPolicy.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise WarrantyPolicyError(f"{source}: {where}: {first['msg']}") from None


def load(path: Path | str | None = None) -> WarrantyPolicy:
    """Read and validate the warranty file (default: the shipped 三包 policy)."""
    file = Path(path) if path else DEFAULT_FILE
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WarrantyPolicyError(f"{file}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise WarrantyPolicyError(f"{file}: not valid TOML: {exc}") from None
    return parse(doc, source=str(file))
