#!/usr/bin/env bash
# CPU accounting for the bench scripts, and what keeps their own cost down. Source it, then:
#   cpu_ticks PID...     utime + stime of the PIDs summed, in clock ticks (fields 14, 15
#                        after the comm); nothing (status 1) when one is gone. No fork: the
#                        bottleneck bench reads it twice per run.
#   napi_ticks IFACE...  the same summed over the kernel threads that poll these
#                        interfaces' NAPI (`kcpx up --napi threaded` makes them on a veth):
#                        the XDP backend's receive work runs there, so its CPU per GB
#                        counts them.
#   bench_python DIR     python3 in PATH from here on (children too) is the interpreter
#                        itself, linked from DIR/bin: a version manager's shim (pyenv's is
#                        a bash script) costs about a second a start on a busy 2-core
#                        machine, and a full bench starts python3 a few hundred times.

cpu_ticks() {
	local p s f t=0
	for p in "$@"; do
		read -r s 2>/dev/null <"/proc/$p/stat" || return 1
		read -ra f <<<"${s##*) }"
		t=$((t + f[11] + f[12]))
	done
	echo "$t"
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

bench_python() {
	local py
	py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || return 0
	[ -x "$py" ] || return 0
	mkdir -p "$1/bin" && ln -sf "$py" "$1/bin/python3" && export PATH="$1/bin:$PATH"
}
