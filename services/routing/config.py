"""Routing's configuration files (TOML, stdlib ``tomllib``): the rule set and the roster seed.

Both are validated completely before anything uses them; an error names the file, the line and the
problem (``rules.toml: line 42: rules[3].category: Input should be 'fault', ...``). A loaded
``RuleSet`` is immutable, so the running rules are swapped whole or not at all.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.events import CATEGORIES, Category
from shared.messages import Priority

HERE = Path(__file__).parent
Role = Literal["lead", "supervisor", "manager"]
Name = Field(min_length=1, max_length=100, pattern=r"^[\w.\-]+$")


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names file, line and problem."""


class RoutingSettings(BaseSettings):
    """``ROUTING_RULES_FILE`` and ``ROUTING_ROSTER_FILE`` (defaults: the files shipped beside this module)."""

    model_config = SettingsConfigDict(env_prefix="ROUTING_", extra="ignore", frozen=True)

    rules_file: Path = HERE / "rules.toml"
    roster_file: Path = HERE / "roster.toml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(Strict):
    """One classification rule: matches when any of its conditions holds."""

    name: str = Name
    category: Category
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    complaint_types: tuple[str, ...] = ()
    # records (#14): the intake's service_type, the warranty check's entitlement, the diagnosis' cause
    service_types: tuple[Literal["repair", "replace", "return", "exchange", "consult", "other"], ...] = ()
    entitlements: tuple[Literal["return", "exchange", "repair", "paid"], ...] = ()
    causes: tuple[Literal["hardware", "software", "operation", "quality", "logistics", "other"], ...] = ()
    urgency: Literal["urgent"] | None = None  # the text says business stopped: raise the urgency
    # Generic words (请问, 建议): decide only when no other rule matched, never make a ticket cross-department.
    weak: bool = False
    # Its match settles the ticket even when rules of other departments match too (no cross-department).
    exclusive: bool = False

    @field_validator("keywords", "kinds", "complaint_types")
    @classmethod
    def _non_empty(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if any(not v.strip() for v in values):
            raise ValueError("must not contain empty strings")
        return tuple(v.strip().casefold() for v in values)

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for i, pattern in enumerate(values):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {i} ({pattern!r}) is not a valid regular expression: {exc}") from None
        return values

    @model_validator(mode="after")
    def _has_condition(self) -> Rule:
        if not (self.keywords or self.patterns or self.kinds or self.complaint_types or self.service_types
                or self.entitlements or self.causes):
            raise ValueError("a rule needs at least one of keywords, patterns, kinds, complaint_types, "
                             "service_types, entitlements, causes")
        return self


class PriorityAdjust(Strict):
    """Moves the priority to at least / at most ``priority`` when every given condition holds."""

    name: str = Name
    priority: Priority
    urgency: tuple[Literal["urgent", "normal", "low"], ...] | None = None
    tier: tuple[Literal["vip", "standard"], ...] | None = None
    impact: tuple[Literal["single", "batch"], ...] | None = None
    category: tuple[Category, ...] | None = None
    complaint: bool | None = None


class PriorityMatrix(Strict):
    """Base priority per category, then caps (``at_most``), then floors (``at_least``)."""

    base: dict[Category, Priority]
    at_most: tuple[PriorityAdjust, ...] = ()
    at_least: tuple[PriorityAdjust, ...] = ()

    @field_validator("base")
    @classmethod
    def _all_categories(cls, base: dict[str, str]) -> dict[str, str]:
        if missing := [c for c in CATEGORIES if c not in base]:
            raise ValueError(f"missing categories: {', '.join(missing)}")
        return base


class Department(Strict):
    categories: tuple[Category, ...]
    lead: str | None = None
    supervisor: str | None = None


class Escalation(Strict):
    """The chain (level = position + 1) and which role each trigger reaches on its n-th occurrence."""

    manager: str = Name
    chain: tuple[Role, ...] = ("lead", "supervisor", "manager")
    callback_minutes: int = Field(60, ge=1, le=24 * 60)
    sla_warning: tuple[Role, ...] = ("lead",)
    sla_breached: tuple[Role, ...] = ("supervisor", "manager")
    survey_negative: tuple[Role, ...] = ("manager",)
    unassignable: tuple[Role, ...] = ("manager",)
    # records (#14): a step of the category's sequence overdue (sla metric "step"): the handler's superior
    step_warning: tuple[Role, ...] = ("lead",)
    step_breached: tuple[Role, ...] = ("lead",)

    @model_validator(mode="after")
    def _roles_in_chain(self) -> Escalation:
        if len(set(self.chain)) != len(self.chain) or "manager" not in self.chain:
            raise ValueError("chain must list distinct roles and include manager")
        for trigger in ("sla_warning", "sla_breached", "survey_negative", "unassignable", "step_warning",
                        "step_breached"):
            roles = getattr(self, trigger)
            if not roles:
                raise ValueError(f"{trigger}: at least one role")
            if stray := [r for r in roles if r not in self.chain]:
                raise ValueError(f"{trigger}: roles not in chain: {', '.join(stray)}")
        return self

    def level(self, role: str) -> int:
        return self.chain.index(role) + 1


class RuleSet(Strict):
    """The whole rules file: classification rules, the priority matrix, departments, escalation."""

    version: str = Field(min_length=1, max_length=100)
    rules: tuple[Rule, ...] = Field(min_length=1)
    priority: PriorityMatrix
    departments: dict[str, Department]
    escalation: Escalation
    sha256: str = ""

    def department_of(self, category: str) -> str | None:
        for name, dept in self.departments.items():
            if category in dept.categories:
                return name
        return None


def rules_problems(rules: RuleSet) -> list[tuple[tuple[Any, ...], str]]:
    """What field types cannot say: unique rule names, a category in one department only."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    seen_names: set[str] = set()
    for i, rule in enumerate(rules.rules):
        if rule.name in seen_names:
            problems.append((("rules", i, "name"), f"duplicate rule name {rule.name!r}"))
        seen_names.add(rule.name)
    owner: dict[str, str] = {}
    for dept, d in rules.departments.items():
        if not re.fullmatch(r"[\w.\-]{1,100}", dept):
            problems.append((("departments", dept), "a department name holds letters, digits, _ . - only"))
        for c in d.categories:
            if c in owner:
                problems.append((("departments", dept, "categories"),
                                 f"category {c} is already in department {owner[c]}"))
            owner[c] = dept
    return problems


def _a_number(value: object) -> object:
    """JSON's integers (``3``, ``3.0``); neither ``true`` nor ``"3"`` (pydantic would take them as 1 and 3)."""
    if isinstance(value, bool | str):
        raise ValueError("must be an integer")
    return value


Capacity = Annotated[int, Field(ge=0, le=1000), BeforeValidator(_a_number)]


class AgentSpec(Strict):
    """An agent on the roster (file or ``PUT /v1/roster``)."""

    id: str = Name
    name: str | None = Field(None, max_length=100)
    department: str = Field(min_length=1, max_length=100)
    capacity: Capacity
    available: StrictBool = True
    lead: str | None = Field(None, max_length=100)


class Roster(Strict):
    version: str = Field("unversioned", min_length=1, max_length=100)
    agents: tuple[AgentSpec, ...] = ()
    sha256: str = ""


def check_roster(roster: Roster, rules: RuleSet) -> list[tuple[tuple[Any, ...], str]]:
    """Duplicate ids and departments the rules do not know: ``[(loc, problem)]``."""
    seen: set[str] = set()
    problems: list[tuple[tuple[Any, ...], str]] = []
    for i, a in enumerate(roster.agents):
        if a.id in seen:
            problems.append((("agents", i, "id"), f"duplicate agent id {a.id!r}"))
        seen.add(a.id)
    return problems + [(("agents", i, "department"), f"unknown department {a.department!r}; one of "
             + ", ".join(rules.departments))
            for i, a in enumerate(roster.agents) if a.department not in rules.departments]


# ---- loading with line numbers ----

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def _locate(lines: list[str], loc: tuple[Any, ...]) -> int:
    """Best line (1-based) for a pydantic error location in a TOML text."""
    root_end = next((i for i, text in enumerate(lines) if text.lstrip().startswith("[")), len(lines))
    line, end, prefix, array_key = 0, root_end, "", None
    for part in loc:
        if isinstance(part, int):
            if array_key is None:
                continue  # an index inside an inline array: stay on the key's line
            header = re.compile(r"^\s*\[\[\s*" + re.escape(array_key) + r"\s*\]\]")
            hits = [i for i in range(line, len(lines)) if header.match(lines[i])]
            if part < len(hits):
                line = hits[part]
                nxt = [i for i in range(line + 1, len(lines)) if lines[i].lstrip().startswith("[")]
                end, prefix = (nxt[0] if nxt else len(lines)), array_key
            array_key = None
            continue
        key = str(part)
        full = f"{prefix}.{key}" if prefix else key
        header = re.compile(r"^\s*\[\[?\s*" + re.escape(full) + r"\s*\]\]?")
        assign = re.compile(r"^\s*\"?" + re.escape(key) + r"\"?\s*=")
        found = next((i for i in range(line, len(lines)) if header.match(lines[i])), None)
        if found is not None:
            line, prefix = found, full
            array_key = full if lines[found].lstrip().startswith("[[") else None
            nxt = [i for i in range(found + 1, len(lines)) if lines[i].lstrip().startswith("[")]
            end = nxt[0] if nxt else len(lines)
            continue
        found = next((i for i in range(line, end) if assign.match(lines[i])), None)
        if found is None:
            prefix = full  # perhaps only dotted headers below ([departments.technical])
            continue
        line, array_key = found, None
    return line + 1


def _parse(path: Path) -> tuple[dict[str, Any], list[str], str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS.search(msg)
        where = f"line {m.group(1)}, column {m.group(2)}" if m else "line ?"
        raise ConfigError(f"{path}: {where}: {_TOML_POS.sub('', msg).strip()}") from None
    return data, text.splitlines(), hashlib.sha256(raw).hexdigest()


def _errors(path: Path, lines: list[str], errors: list[tuple[tuple[Any, ...], str]]) -> ConfigError:
    parts = []
    for loc, problem in errors:
        field = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
        parts.append(f"{path}: line {_locate(lines, loc)}: {field or 'file'}: {problem}")
    return ConfigError("\n".join(parts))


def _validate(model: type[BaseModel], path: Path) -> tuple[Any, list[str]]:
    data, lines, sha = _parse(path)
    try:
        return model.model_validate({**data, "sha256": sha}), lines
    except ValidationError as exc:
        errs = [(tuple(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in exc.errors(include_url=False)]
        raise _errors(path, lines, errs) from None


def load_rules(path: Path) -> RuleSet:
    """Parse and validate a rules file; ``ConfigError`` names the line and the problem."""
    rules, lines = _validate(RuleSet, path)
    if problems := rules_problems(rules):
        raise _errors(path, lines, problems)
    return rules


def load_roster(path: Path, rules: RuleSet) -> Roster:
    """Parse and validate a roster file against ``rules`` (its departments)."""
    roster, lines = _validate(Roster, path)
    if problems := check_roster(roster, rules):
        raise _errors(path, lines, problems)
    return roster


def load(settings: RoutingSettings) -> tuple[RuleSet, Roster]:
    rules = load_rules(settings.rules_file)
    return rules, load_roster(settings.roster_file, rules)
