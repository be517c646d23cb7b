#!/bin/sh
# Usage: writable-config.sh TEMPLATE COPY COMMAND...
# Copies the read-only TEMPLATE to the writable COPY once (a restarted sentinel keeps what it
# learned), then runs COMMAND. The local launcher does the same in lib/launcher/local_stack.py.
set -e
template="$1"; copy="$2"; shift 2
[ -f "$copy" ] || cp "$template" "$copy"
exec "$@"
