#!/usr/bin/env bash
# What `make run` serves: gunicorn, the task worker and the event pump, together.
# Ctrl-C stops all three; if one of them stops, the others are stopped too.
set -uo pipefail
cd "$(dirname "$0")/.."
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
VENV=${VENV:-.venv}
export DJANGO_PLAIN_STATIC=0

trap 'trap - EXIT INT TERM; kill $(jobs -p) 2>/dev/null; wait' EXIT INT TERM

"$VENV/bin/gunicorn" crm.wsgi --bind "$HOST:$PORT" --workers 2 --threads 4 --access-logfile - &
"$VENV/bin/python" manage.py db_worker --no-reload --interval 0.5 &
"$VENV/bin/python" manage.py pump_events &
wait -n
