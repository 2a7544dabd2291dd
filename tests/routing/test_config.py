"""Bad configuration is refused at start, naming the file, the line and the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.routing.config import ConfigError, RoutingSettings, load, load_roster, load_rules

DEFAULT = RoutingSettings()
RULES_TEXT = DEFAULT.rules_file.read_text(encoding="utf-8")
ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, nth: int = 0) -> int:
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[nth]


def refused(path: Path, loader=load_rules) -> str:  # noqa: ANN001
    with pytest.raises(ConfigError) as err:
        loader(path)
    return str(err.value)


def test_default_files_load():
    rules, roster = load(DEFAULT)
    assert rules.version and rules.sha256 and len(roster.agents) >= 5
    assert set(rules.departments) >= {"technical", "finance", "logistics", "service_quality"}


def test_toml_syntax_error_names_line_and_column(tmp_path):
    text = RULES_TEXT.replace('name = "refund"', 'name = "refund', 1)
    msg = refused(write(tmp_path, text))
    ln = line_of(text, 'name = "refund')
    assert f"line {ln}" in msg and "rules.toml" in msg


def test_unknown_category_names_the_rule_line(tmp_path):
    text = RULES_TEXT.replace('category = "refund"', 'category = "money"', 1)
    msg = refused(write(tmp_path, text))
    ln = line_of(text, 'category = "money"')
    assert f"line {ln}: rules[" in msg and ".category" in msg
    assert "'fault'" in msg  # the problem lists what is allowed


def test_bad_regex_names_the_patterns_line(tmp_path):
    text = RULES_TEXT.replace("patterns = ['\\b(system", "patterns = ['(unclosed', '\\b(system", 1)
    msg = refused(write(tmp_path, text))
    assert f"line {line_of(text, 'unclosed')}: rules[0].patterns" in msg and "regular expression" in msg


def test_typo_in_a_key_is_named(tmp_path):
    text = RULES_TEXT.replace("keywords = [\"退款\"", "keywrods = [\"退款\"", 1)
    msg = refused(write(tmp_path, text))
    assert f"line {line_of(text, 'keywrods')}" in msg and "keywrods" in msg and "Extra inputs" in msg


def test_duplicate_rule_name_and_double_department(tmp_path):
    text = RULES_TEXT.replace('name = "return"', 'name = "refund"', 1)
    msg = refused(write(tmp_path, text))
    ln = line_of(text, 'name = "refund"', 1)
    assert f"line {ln}: rules[" in msg and "duplicate rule name" in msg
    text = RULES_TEXT.replace('categories = ["refund"]', 'categories = ["refund", "fault"]', 1)
    msg = refused(write(tmp_path, text))
    ln = line_of(text, 'categories = ["refund", "fault"]')
    assert f"line {ln}" in msg
    assert "already in department technical" in msg


def test_priority_matrix_must_cover_every_category(tmp_path):
    text = RULES_TEXT.replace('other = "P3"\n', "", 1)
    msg = refused(write(tmp_path, text))
    assert f"line {line_of(text, '[priority.base]')}: priority.base: missing categories: other" in msg


def test_escalation_role_outside_the_chain(tmp_path):
    text = RULES_TEXT.replace('sla_warning = ["lead"]', 'sla_warning = ["boss"]', 1)
    msg = refused(write(tmp_path, text))
    assert f"line {line_of(text, 'sla_warning')}: escalation.sla_warning" in msg


def test_roster_with_unknown_department_and_duplicate(tmp_path):
    rules = load_rules(DEFAULT.rules_file)
    text = ('version = "t"\n\n[[agents]]\nid = "a"\ndepartment = "technical"\ncapacity = 1\n\n'
            '[[agents]]\nid = "b"\ndepartment = "marketing"\ncapacity = 1\n\n'
            '[[agents]]\nid = "a"\ndepartment = "finance"\ncapacity = -2\n')
    path = write(tmp_path, text, "roster.toml")
    msg = refused(path, lambda p: load_roster(p, rules))
    assert "line 16: agents[2].capacity" in msg
    text = text.replace("capacity = -2", "capacity = 2")
    msg = refused(write(tmp_path, text, "roster.toml"), lambda p: load_roster(p, rules))
    assert "line 10: agents[1].department: unknown department 'marketing'" in msg
    assert "line 14: agents[2].id: duplicate agent id 'a'" in msg


def test_missing_file_is_refused(tmp_path):
    assert "cannot read" in refused(tmp_path / "nope.toml")


def test_service_refuses_to_start_with_a_bad_rules_file(tmp_path):
    from services.routing.app import create_app

    bad = write(tmp_path, RULES_TEXT.replace('category = "refund"', 'category = "money"', 1))
    with pytest.raises(ConfigError):
        create_app(routing=RoutingSettings(rules_file=bad))
    env = {**os.environ, "ROUTING_RULES_FILE": str(bad), "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
           "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    proc = subprocess.run([sys.executable, "-m", "services.routing"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    ln = line_of(RULES_TEXT, 'name = "refund"') + 1
    assert "refusing to start" in proc.stderr and f"line {ln}" in proc.stderr
