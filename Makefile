# The quick start is two commands: `make demo` and `make test`. See README.md.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
DEMO_SUBSCRIBERS ?= 50000
DEMO_DAYS ?= 30
DEMO_DATE ?= 2026-10-31
# A snapshot a week earlier too, so that the map shows change and home moves since the previous snapshot.
DEMO_PREVIOUS_DATE ?= 2026-10-24
DEMO_CITY := var/city
# Services used by `make test-services` (the machine's local PostgreSQL and Redis by default).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: install demo serve test test-services bench messages clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

$(DEMO_CITY)/truth/city.json: | install
	DEBUG=1 $(PY) manage.py simulate_city --subscribers $(DEMO_SUBSCRIBERS) --days $(DEMO_DAYS) --end-date $(DEMO_DATE) --out $(DEMO_CITY)

# The demo and the tests run in development mode (DEBUG=1): production is the default (docs/security.md).
demo: export DEBUG = 1
demo: install $(DEMO_CITY)/truth/city.json
	$(PY) manage.py migrate --no-input
	$(PY) manage.py ingest_city $(DEMO_CITY)
	$(PY) manage.py import_micro_areas $(DEMO_CITY)/districts.geojson
	$(PY) manage.py install_tag_catalogue
	SNAPSHOT_PARTITION_SIZE=10000 $(PY) manage.py run_snapshot --date $(DEMO_PREVIOUS_DATE)
	SNAPSHOT_PARTITION_SIZE=10000 $(PY) manage.py run_snapshot --date $(DEMO_DATE)
	@$(PY) manage.py create_demo_accounts > /dev/null
	$(PY) manage.py run_closed_loop --city $(DEMO_CITY) --manager admin --field field_chancheng field_shunde --control-share 0.2
	@echo
	@$(PY) manage.py create_demo_accounts
	@echo "Serving on http://127.0.0.1:8000/ (Ctrl-C to stop)"
	$(PY) manage.py runserver 127.0.0.1:8000

serve: install
	DEBUG=1 $(PY) manage.py runserver 127.0.0.1:8000

# The whole suite on the embedded default: SQLite, a local lake, Celery eager.
test: install
	env -u DATABASE_URL -u REDIS_URL DEBUG=1 $(PY) -m pytest

# The same suite against PostgreSQL and Redis, with a real `celery worker` process (started by the tests).
test-services: install
	DEBUG=1 DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest

bench: install
	cd bench && export DEBUG=1 && ../$(PY) simulate.py && ../$(PY) ingest.py && ../$(PY) tags.py && ../$(PY) preview.py && ../$(PY) terminals.py && ../$(PY) location.py && ../$(PY) hexes.py && ../$(PY) export.py && ../$(PY) heavy_requests.py

# After changing a label: collect the msgids (English) into locale/zh_Hans, translate the new ones in the .po
# files, and compile; the compiled catalogues are committed, so installing needs no gettext.
messages: install
	DEBUG=1 $(PY) manage.py makemessages -l zh_Hans --ignore=.venv --ignore=var --ignore=tests --ignore=bench --ignore=simulation --ignore=demo --ignore=staticfiles --no-obsolete
	DEBUG=1 $(PY) manage.py makemessages -d djangojs -l zh_Hans --ignore=.venv --ignore=var --ignore='static/leaflet/*' --ignore=staticfiles --no-obsolete
	DEBUG=1 $(PY) manage.py compilemessages --ignore=.venv

clean:
	rm -rf var
