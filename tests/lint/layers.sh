#!/bin/sh
# The daemon's layers, top to bottom (docs/architecture.md):
#   server → ecs, elb, secrets → svc → lb → sched → store → common
# A file may include its own layer's headers and those of layers below it,
# never above; the layers under daemon/ (common, images, cgroups, netns,
# runtime) include nothing of daemon/.  daemon/main.c and daemon/daemon.c
# build and wire the layers, so they may include any.  Prints every
# upward include and exits 1 if there is one.
cd "$(dirname "$0")/../.." || exit 2
rank() {
	case "$1" in
	server) echo 6 ;; ecs|elb|secrets) echo 5 ;; svc) echo 4 ;; lb) echo 3 ;;
	sched) echo 2 ;; store) echo 1 ;;
	*) echo 0 ;;
	esac
}
bad=0
for f in daemon/*/*.[ch] common/*.[ch] images/*.[ch] cgroups/*.[ch] netns/*.[ch] runtime/*.[ch]; do
	top=${f%%/*}
	if [ "$top" = daemon ]; then
		layer=${f#daemon/}; layer=${layer%%/*}; own=$(rank "$layer")
	else
		layer=$top; own=0
	fi
	for inc in $(sed -n 's/^#include "\(daemon\/[^"]*\)".*/\1/p' "$f"); do
		dep=${inc#daemon/}; dep=${dep%%/*}
		case "$inc" in daemon/*/*) ;; *) dep=daemon ;; esac
		if [ "$top" != daemon ] || [ "$dep" = daemon ] || [ "$(rank "$dep")" -gt "$own" ]; then
			echo "layers: $f ($layer) includes $inc ($dep): a layer includes only its own and lower layers" >&2
			bad=1
		fi
	done
done
[ $bad -eq 0 ] && echo "layers: every include points down (server → ecs, elb, secrets → svc → lb → sched → store → common)"
exit $bad
