// SPDX-License-Identifier: MIT
#include "io/seccomp.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <termios.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#if defined(__x86_64__)
#define SC_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SC_ARCH AUDIT_ARCH_AARCH64
#endif

static atomic_uint_fast64_t sc_denied;
static atomic_int sc_last;

uint64_t kcpx_seccomp_denied(int *last_nr)
{
	if (last_nr)
		*last_nr = atomic_load(&sc_last);
	return atomic_load(&sc_denied);
}

#ifdef SC_ARCH

/* What a relay does once set up. Anything else traps (sc_sigsys: EPERM, counted). */
static const int sc_allowed[] = {
	/* I/O on fds it holds or opens */
	__NR_read,
	__NR_write,
	__NR_readv,
	__NR_writev,
	__NR_pread64,
	__NR_pwrite64,
	__NR_close,
	__NR_lseek,
	__NR_fsync,
	__NR_fdatasync,
	__NR_fcntl,
	__NR_dup,
	__NR_dup3,
	__NR_pipe2,
	/* sockets: the tunnel's, dials to the target, accepted streams, metrics, control,
	 * DNS lookups, sd_notify */
	__NR_socket,
	__NR_socketpair,
	__NR_connect,
	__NR_accept,
	__NR_accept4,
	__NR_bind,
	__NR_listen,
	__NR_getsockname,
	__NR_getpeername,
	__NR_setsockopt,
	__NR_getsockopt,
	__NR_sendto,
	__NR_recvfrom,
	__NR_sendmsg,
	__NR_recvmsg,
	__NR_sendmmsg,
	__NR_recvmmsg,
	__NR_shutdown,
	/* the event loop */
	__NR_epoll_create1,
	__NR_epoll_ctl,
	__NR_epoll_pwait,
	__NR_ppoll,
	__NR_pselect6,
	__NR_eventfd2,
	__NR_signalfd4,
	__NR_timerfd_create,
	__NR_timerfd_settime,
	__NR_timerfd_gettime,
	/* files: the log and SNMP log (reopened on SIGHUP), -c FILE and --key-file on reload,
	 * the control socket's directory, resolv.conf and friends */
	__NR_openat,
	__NR_fstat,
	__NR_newfstatat,
	__NR_statx,
	__NR_faccessat,
	__NR_getdents64,
	__NR_readlinkat,
	__NR_mkdirat,
	__NR_unlinkat,
	__NR_renameat,
	__NR_umask,
	/* memory */
	__NR_mmap,
	__NR_munmap,
	__NR_mprotect,
	__NR_mremap,
	__NR_madvise,
	__NR_brk,
	__NR_mlock,
	__NR_munlock,
	/* threads (--threads, the resolver's helper) and signals */
	__NR_futex,
	__NR_set_robust_list,
	__NR_get_robust_list,
	__NR_set_tid_address,
	__NR_sched_yield,
	__NR_sched_getaffinity,
	__NR_gettid,
	__NR_getpid,
	__NR_getppid,
	__NR_exit,
	__NR_exit_group,
	__NR_rt_sigaction,
	__NR_rt_sigprocmask,
	__NR_rt_sigreturn,
	__NR_sigaltstack,
	__NR_restart_syscall,
	/* time, identity, limits */
	__NR_nanosleep,
	__NR_clock_nanosleep,
	__NR_clock_gettime,
	__NR_clock_getres,
	__NR_gettimeofday,
	__NR_getrandom,
	__NR_getuid,
	__NR_geteuid,
	__NR_getgid,
	__NR_getegid,
	__NR_getresuid,
	__NR_getresgid,
	__NR_getgroups,
	__NR_uname,
	__NR_sysinfo,
	__NR_prlimit64,
	__NR_getrlimit,
	__NR_getrusage,
	__NR_times,
	__NR_capget,
	__NR_prctl,
#ifdef __NR_rseq
	__NR_rseq,
#endif
#ifdef __NR_epoll_pwait2
	__NR_epoll_pwait2,
#endif
#ifdef __NR_faccessat2
	__NR_faccessat2,
#endif
#ifdef __NR_renameat2
	__NR_renameat2,
#endif
#ifdef __NR_membarrier
	__NR_membarrier,
#endif
#ifdef __NR_getcpu
	__NR_getcpu,
#endif
#ifdef __NR_open /* the legacy forms, where the ABI has them */
	__NR_open,
	__NR_stat,
	__NR_lstat,
	__NR_access,
	__NR_poll,
	__NR_select,
	__NR_pipe,
	__NR_dup2,
	__NR_mkdir,
	__NR_unlink,
	__NR_rename,
	__NR_epoll_wait,
	__NR_epoll_create,
	__NR_readlink,
	__NR_eventfd,
	__NR_signalfd,
	__NR_time,
	__NR_arch_prctl,
#endif
};

/* ioctl requests allowed: stdio asks whether a stream is a terminal; queue sizes; an
 * interface's index or name (if_nametoindex: --tcp finds the interface a route takes). */
static const unsigned long sc_ioctls[] = { TCGETS,   FIONREAD,	   FIONBIO,
					   TIOCOUTQ, SIOCGIFINDEX, SIOCGIFNAME };

#define ST(code, k)  ((struct sock_filter)BPF_STMT(code, k))
#define JEQ(k, t, f) ((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f)))
#define LD_NR	     ST(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
/* the low 32 bits of argument i (little-endian: at the argument's offset) */
#define LD_ARG(i) ST(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))
#define RET(v)	  ST(BPF_RET | BPF_K, (v))

#define SC_MAX 512

struct sc_prog {
	struct sock_filter f[SC_MAX];
	unsigned n;
};

static void emit(struct sc_prog *p, struct sock_filter ins)
{
	if (p->n < SC_MAX)
		p->f[p->n] = ins;
	p->n++;
}

/* nr == `nr`: run the `len` instructions that follow (they end in a RET), else skip
 * them. The accumulator holds the syscall number again after the skip. */
static void guard(struct sc_prog *p, int nr, unsigned len)
{
	emit(p, JEQ((unsigned)nr, 0, (uint8_t)len));
}

static void sc_sigsys(int sig, siginfo_t *si, void *uctx)
{
	ucontext_t *uc = uctx;

	(void)sig;
	atomic_fetch_add(&sc_denied, 1);
	atomic_store(&sc_last, si->si_syscall);
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RAX] = -EPERM;
#elif defined(__aarch64__)
	uc->uc_mcontext.regs[0] = (uint64_t)(int64_t)-EPERM;
#endif
}

/* bpf() commands of KCPX_SECCOMP_BPF_MAPS: on fds the daemon holds, or a pin by path */
static const unsigned sc_bpf_maps[] = {
	BPF_MAP_LOOKUP_ELEM,  BPF_MAP_UPDATE_ELEM,    BPF_MAP_DELETE_ELEM,
	BPF_MAP_GET_NEXT_KEY, BPF_OBJ_GET_INFO_BY_FD, BPF_OBJ_GET,
};

/* bpf(cmd, ...) allowed for the commands extra asks for, trapped for any other */
static void sc_bpf(struct sc_prog *p, unsigned extra)
{
	unsigned cmds[8], n = 0;

	if (extra & KCPX_SECCOMP_BPF_MAPS)
		for (size_t i = 0; i < sizeof(sc_bpf_maps) / sizeof(sc_bpf_maps[0]); i++)
			cmds[n++] = sc_bpf_maps[i];
	if (extra & KCPX_SECCOMP_BPF_LINK)
		cmds[n++] = BPF_LINK_CREATE;
	if (!n)
		return;
	guard(p, __NR_bpf, 3 + n);
	emit(p, LD_ARG(0));
	for (unsigned i = 0; i < n; i++)
		emit(p, JEQ(cmds[i], (uint8_t)(n - i), 0));
	emit(p, RET(SECCOMP_RET_TRAP));
	emit(p, RET(SECCOMP_RET_ALLOW));
}

int kcpx_seccomp_install(unsigned extra, const char **what)
{
	struct sc_prog p = { .n = 0 };
	unsigned pid = (unsigned)getpid(), nio = sizeof(sc_ioctls) / sizeof(sc_ioctls[0]);
	struct sock_fprog prog;
	struct sigaction sa;
	long rc;

	*what = "";
	emit(&p, ST(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
	emit(&p, JEQ(SC_ARCH, 1, 0));
	emit(&p, RET(SECCOMP_RET_KILL_PROCESS));
	emit(&p, LD_NR);
#ifdef __X32_SYSCALL_BIT
	emit(&p,
	     ((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 0, 1)));
	emit(&p, RET(SECCOMP_RET_KILL_PROCESS));
#endif
	for (size_t i = 0; i < sizeof(sc_allowed) / sizeof(sc_allowed[0]); i++) {
		guard(&p, sc_allowed[i], 1);
		emit(&p, RET(SECCOMP_RET_ALLOW));
	}
	sc_bpf(&p, extra);
	if (extra & KCPX_SECCOMP_WAIT) {
		guard(&p, __NR_wait4, 1);
		emit(&p, RET(SECCOMP_RET_ALLOW));
	}
	/* threads only: fork is refused; clone3's flags are out of reach of a filter, so it
	 * answers ENOSYS and glibc falls back to clone */
	guard(&p, __NR_clone, 4);
	emit(&p, LD_ARG(0));
	emit(&p, ((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1)));
	emit(&p, RET(SECCOMP_RET_ALLOW));
	emit(&p, RET(SECCOMP_RET_TRAP));
#ifdef __NR_clone3
	guard(&p, __NR_clone3, 1);
	emit(&p, RET(SECCOMP_RET_ERRNO | ENOSYS));
#endif
	/* signals to this process only (abort, raise), or signal 0 (is that pid alive?) */
	guard(&p, __NR_tgkill, 4);
	emit(&p, LD_ARG(0));
	emit(&p, JEQ(pid, 0, 1));
	emit(&p, RET(SECCOMP_RET_ALLOW));
	emit(&p, RET(SECCOMP_RET_TRAP));
	guard(&p, __NR_kill, 6);
	emit(&p, LD_ARG(1));
	emit(&p, JEQ(0, 3, 0));
	emit(&p, LD_ARG(0));
	emit(&p, JEQ(pid, 1, 0));
	emit(&p, RET(SECCOMP_RET_TRAP));
	emit(&p, RET(SECCOMP_RET_ALLOW));
	guard(&p, __NR_ioctl, 3 + nio);
	emit(&p, LD_ARG(1));
	for (unsigned i = 0; i < nio; i++)
		emit(&p, JEQ((unsigned)sc_ioctls[i], (uint8_t)(nio - i), 0));
	emit(&p, RET(SECCOMP_RET_TRAP));
	emit(&p, RET(SECCOMP_RET_ALLOW));
	emit(&p, RET(SECCOMP_RET_TRAP));
	if (p.n > SC_MAX) {
		*what = "building the filter";
		return -E2BIG;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sc_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		*what = "installing the SIGSYS handler";
		return -errno;
	}
	prog.len = (unsigned short)p.n;
	prog.filter = p.f;
	/* every thread at once: none may stay outside the filter */
	rc = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
	if (rc) {
		*what = "loading the filter";
		/* TSYNC reports a thread it could not sync as a positive thread id */
		return rc < 0 ? -errno : -EBUSY;
	}
	return 0;
}

#else

int kcpx_seccomp_install(unsigned extra, const char **what)
{
	(void)extra;
	*what = "this architecture (the filter knows x86_64 and aarch64)";
	return -ENOTSUP;
}

#endif
