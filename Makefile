# The two commands a user needs: `make run` and `make test`. Others are per test layer and tooling.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST := $(PY) -m pytest

# (access) migrate: bootstrap as its own step; security: schemathesis, every service x every role
.PHONY: migrate security venv run test test-unit test-integration bench bench-intake bench-routing bench-survey bench-notification bench-sla bench-e2e bench-review bench-masking security-privacy chaos docs dashboards prometheus panels clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

## run every service (intake 8001, routing 8002, sla 8003, notification 8004, survey 8005, review 8006)
run: venv
	HELPDESK_API_KEYS=$${HELPDESK_API_KEYS:-dev:dev-secret:admin} $(PY) -m shared.run

## bootstrap, its own step: database, each service's role and schema, migrations (admin DATABASE_URL)
migrate: venv
	$(PY) -m shared.bootstrap

## schemathesis (all checks) against every service's OpenAPI with a key of each role; `make test` runs a
## bounded version (SECURITY_EXAMPLES / SECURITY_ROLES to change; reports in SECURITY_REPORT_DIR)
security: venv
	SECURITY_EXAMPLES=$${SECURITY_EXAMPLES:-25} SECURITY_ROLES=$${SECURITY_ROLES:-admin,channel,agent,supervisor,contacts,analyst} \
	  $(PYTEST) -q -s -p no:cacheprovider tests/security/test_schemathesis.py

## the whole suite against the real RabbitMQ and Postgres
test: venv
	$(PYTEST) -q -p no:cacheprovider

## every pure test (no broker, no database), wherever it lives: marked `unit` by tests/conftest.py
test-unit: venv
	$(PYTEST) -q -p no:cacheprovider -m unit

test-integration: venv
	$(PYTEST) -q tests/integration

test-%: venv
	$(PYTEST) -q tests/$*

## every benchmark, printed as figures
bench: bench-e2e bench-intake bench-routing bench-survey bench-notification bench-sla

## the whole pipeline: end-to-end tickets/s, intake->routed latency at 100/s, CPU/RSS per service,
## substrate ceiling and ratio, cost per ticket at 10k / 1M stored (BENCH_ARGS=--quick for a short run)
bench-e2e: venv
	$(PY) -m scripts.bench_e2e $(BENCH_ARGS)

## the broker's floor: a ticket's messages through the real topology with no service logic and no
## database (RabbitMQ and client CPU per ticket), and the same with review and timeline on the stream
bench-floor: venv
	$(PY) -m scripts.bench_floor $(BENCH_ARGS)

## fault injection: kill -9 every service in turn, restart RabbitMQ and Postgres once (this machine's!),
## 10k malformed bodies; prints the counts it checks (CHAOS_ARGS to change sizes)
chaos: venv
	$(PY) -m scripts.chaos --restart-infra $(CHAOS_ARGS)

## intake throughput over AMQP (tickets/s until ticket.created is confirmed)
bench-intake: venv
	$(PY) -m scripts.bench_intake

## routing latency: ticket.created -> ticket.routed p50/p99
bench-routing: venv
	$(PY) -m scripts.bench_routing

## masking time on 64 KB strings of the worst shapes (the old regex: 20-30 s each)
bench-masking: venv
	$(PY) -m scripts.bench_masking

## the masking fuzz at length (5,000 examples per property; `make test` runs 200)
security-privacy: venv
	PRIVACY_FUZZ_EXAMPLES=$${PRIVACY_FUZZ_EXAMPLES:-5000} $(PYTEST) -q -p no:cacheprovider tests/unit/test_masking_fuzz.py

## notification: deliveries/s to a local signed-webhook sink
bench-notification: venv
	$(PY) -m scripts.bench_notification

## SLA timers: firing lateness and RSS with 1,000,000 open timers
bench-sla: venv
	$(PY) -m scripts.bench_sla

## review: 1,000,000 tickets in a month -> rebuild replay events/s and the month's report time (BENCH_ARGS=--tickets N)
bench-review: venv
	$(PY) -m scripts.bench_review $(BENCH_ARGS)

## survey: resolution -> survey.sent latency, answers/s
bench-survey: venv
	$(PY) -m scripts.bench_survey

## write the OpenAPI and AsyncAPI documents to docs/
docs: venv
	$(PY) -m scripts.gen_docs

## regenerate deploy/grafana/dashboards/*.json
dashboards: venv
	$(PY) -m scripts.dashboards

## a Prometheus on 127.0.0.1:9090 scraping `make run`, with the alert rules
prometheus:
	prometheus --config.file=deploy/prometheus/prometheus-local.yml --storage.tsdb.path=$${TMPDIR:-/tmp}/helpdesk-prometheus --web.listen-address=127.0.0.1:9090

## what every dashboard panel shows now
panels: venv
	$(PY) -m scripts.panel_values --prometheus $${PROMETHEUS:-http://127.0.0.1:9090}

clean:
	rm -rf $(VENV) .pytest_cache
