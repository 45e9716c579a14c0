#!/bin/sh
# Syntax-checks every shell script under board/ with busybox sh (the shell routers run).
# Usage: board/check.sh   (exit status 0 when all pass)
set -u
here=$(cd "$(dirname "$0")" && pwd)
status=0
for script in "$here/check.sh" "$here/openwrt/swandog.init" "$here/busybox/S95swandog"; do
	if busybox sh -n "$script"; then
		echo "ok   ${script#"$here"/}"
	else
		echo "FAIL ${script#"$here"/}"
		status=1
	fi
done
exit "$status"
