#!/bin/sh
# Run the e2e suite once per MPM (event, worker, prefork); extra arguments go to pytest.
# Exits non-zero when any run failed.
cd "$(dirname "$0")" || exit 2
status=0
for mpm in event worker prefork; do
    echo "== LLMGW_MPM=$mpm"
    LLMGW_MPM=$mpm /usr/bin/python3 -m pytest "$@" || status=1
done
exit $status
