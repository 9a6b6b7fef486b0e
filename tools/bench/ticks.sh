#!/usr/bin/env bash
# CPU accounting for the bench scripts. Source it, then:
#   cpu_ticks PID        utime + stime of PID, in clock ticks (fields 14, 15 after the comm)
#   napi_ticks IFACE...  the same summed over the kernel threads that poll these
#                        interfaces' NAPI (`kcpx up --napi threaded` makes them on a veth):
#                        the XDP backend's receive work runs there, so its CPU per GB
#                        counts them.

cpu_ticks() {
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}

# A NAPI thread is named napi/IFACE-ID, cut to 15 characters like every task name.
napi_ticks() {
	local t=0 f c i p
	for f in /proc/[0-9]*/comm; do
		read -r c <"$f" 2>/dev/null || continue
		[ "${c#napi/}" = "$c" ] && continue
		for i in "$@"; do
			p="napi/$i-"
			if { [ ${#p} -ge 15 ] && [ "$c" = "${p:0:15}" ]; } ||
				[ "${c#"$p"}" != "$c" ] || [ "$c" = "napi/$i" ]; then
				f=${f#/proc/}
				t=$((t + $(cpu_ticks "${f%/comm}" || echo 0)))
				break
			fi
		done
	done
	echo "$t"
}
