// SPDX-License-Identifier: MIT
/*
 * The syscall allow-list of io/seccomp.c (a classic BPF program), run for real: each case
 * forks a child that sets no_new_privs, installs the filter and tries what a relay does
 * (must work) and what an intruder would (must fail with EPERM and be counted, or kill
 * the process). The child reports the first step that went wrong and exits non-zero.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <linux/bpf.h>
#include <arpa/inet.h>
#include <termios.h>
#include <unistd.h>

#include "io/seccomp.h"
#include "unit.h"

#define STEP(cond)                                                                                 \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "child: line %d: %s (errno %d)\n", __LINE__, #cond,        \
				errno);                                                            \
			_exit(1);                                                                  \
		}                                                                                  \
	} while (0)

static void child_install_extra(unsigned extra)
{
	const char *what;
	int err;

	STEP(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	err = kcpx_seccomp_install(extra, &what);
	if (err) {
		fprintf(stderr, "child: %s: %s\n", what, strerror(-err));
		_exit(2);
	}
}

static void child_install(void)
{
	child_install_extra(0);
}

/* Run fn in a child; returns its wait status. */
static int in_child(void (*fn)(void))
{
	int status = -1;
	pid_t pid = fork();

	if (pid == 0) {
		fn();
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

static void *thread_fn(void *arg)
{
	return arg;
}

static void relay_works(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	char buf[8];
	int s, r, n, p[2];
	pthread_t th;
	void *ret;

	child_install();
	/* a UDP datagram to ourselves */
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	STEP(s >= 0);
	STEP(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
	STEP(getsockname(s, (struct sockaddr *)&a, &alen) == 0);
	STEP(sendto(s, "kcpx", 4, 0, (struct sockaddr *)&a, sizeof(a)) == 4);
	STEP(ioctl(s, FIONREAD, &n) == 0 && n == 4);
	r = (int)recv(s, buf, sizeof(buf), 0);
	STEP(r == 4 && !memcmp(buf, "kcpx", 4));
	STEP(close(s) == 0);
	STEP(pipe2(p, O_CLOEXEC) == 0 && write(p[1], "x", 1) == 1 && read(p[0], buf, 1) == 1);
	/* threads (--threads, glibc's resolver helper): clone3 is refused, clone taken */
	STEP(pthread_create(&th, NULL, thread_fn, (void *)buf) == 0);
	STEP(pthread_join(th, &ret) == 0 && ret == buf);
	STEP(kill(getppid(), 0) == 0); /* signal 0: is it alive */
	STEP(kcpx_seccomp_denied(NULL) == 0);
}

static void intruder_refused(void)
{
	char *argv[] = { "/bin/true", NULL }, *envp[] = { NULL };
	int last = 0;
	char c = 'x';

	child_install();
	errno = 0;
	STEP(execve("/bin/true", argv, envp) < 0 && errno == EPERM);
	STEP(kcpx_seccomp_denied(&last) == 1 && last == __NR_execve);
	STEP(fork() < 0 && errno == EPERM);
	STEP(ptrace(PTRACE_ATTACH, getppid(), 0, 0) < 0 && errno == EPERM);
	STEP(mount("none", "/mnt", "tmpfs", 0, NULL) < 0 && errno == EPERM);
	STEP(syscall(__NR_bpf, 0, NULL, 0) < 0 && errno == EPERM);
	STEP(kill(getppid(), SIGWINCH) < 0 && errno == EPERM);
	STEP(syscall(__NR_tgkill, getppid(), getppid(), SIGWINCH) < 0 && errno == EPERM);
	STEP(ioctl(0, TIOCSTI, &c) < 0 && errno == EPERM);
	STEP(setuid(0) < 0 && errno == EPERM);
	STEP(kcpx_seccomp_denied(&last) == 9 && last == __NR_setuid);
}

static long sys_bpf(int cmd, union bpf_attr *a)
{
	return syscall(__NR_bpf, cmd, a, sizeof(*a));
}

/* kcpx up's additions: the maps it holds work, and no other bpf() command does */
static void backend_maps(void)
{
	union bpf_attr a;
	uint32_t k = 1, v = 42, got = 0;
	int last = 0, fd;

	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_ARRAY;
	a.key_size = 4;
	a.value_size = 4;
	a.max_entries = 2;
	fd = (int)sys_bpf(BPF_MAP_CREATE, &a);
	if (fd < 0)
		_exit(4); /* no bpf() here (not root): the case is skipped */
	child_install_extra(KCPX_SECCOMP_BPF_MAPS);
	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)fd;
	a.key = (uint64_t)(uintptr_t)&k;
	a.value = (uint64_t)(uintptr_t)&v;
	STEP(sys_bpf(BPF_MAP_UPDATE_ELEM, &a) == 0);
	a.value = (uint64_t)(uintptr_t)&got;
	STEP(sys_bpf(BPF_MAP_LOOKUP_ELEM, &a) == 0 && got == 42);
	STEP(kcpx_seccomp_denied(NULL) == 0);
	memset(&a, 0, sizeof(a));
	STEP(sys_bpf(BPF_PROG_LOAD, &a) < 0 && errno == EPERM);
	STEP(sys_bpf(BPF_MAP_CREATE, &a) < 0 && errno == EPERM);
	STEP(sys_bpf(BPF_BTF_LOAD, &a) < 0 && errno == EPERM);
	STEP(sys_bpf(BPF_PROG_GET_FD_BY_ID, &a) < 0 && errno == EPERM);
	STEP(sys_bpf(BPF_LINK_CREATE, &a) < 0 && errno == EPERM);
	STEP(wait4(-1, NULL, WNOHANG, NULL) < 0 && errno == EPERM);
	STEP(execve("/bin/true", (char *[]){ "/bin/true", NULL }, (char *[]){ NULL }) < 0 &&
	     errno == EPERM);
	STEP(kcpx_seccomp_denied(&last) == 7 && last == __NR_execve);
}

/* --tcp's: links may be made (a bad fd gets past the filter to the kernel), and helpers
 * reaped */
static void backend_links(void)
{
	union bpf_attr a;

	child_install_extra(KCPX_SECCOMP_BPF_MAPS | KCPX_SECCOMP_BPF_LINK | KCPX_SECCOMP_WAIT);
	memset(&a, 0, sizeof(a));
	a.link_create.prog_fd = (uint32_t)-1;
	STEP(sys_bpf(BPF_LINK_CREATE, &a) < 0 && errno != EPERM);
	STEP(wait4(-1, NULL, WNOHANG, NULL) < 0 && errno == ECHILD);
	STEP(sys_bpf(BPF_PROG_LOAD, &a) < 0 && errno == EPERM);
	STEP(kcpx_seccomp_denied(NULL) == 1);
}

#ifdef __X32_SYSCALL_BIT
static void foreign_abi_killed(void)
{
	child_install();
	syscall(__X32_SYSCALL_BIT | __NR_getpid);
	_exit(3); /* not reached */
}
#endif

static void test_relay_works(void)
{
	int st = in_child(relay_works);

	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 0);
}

static void test_intruder_refused(void)
{
	int st = in_child(intruder_refused);

	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 0);
}

static void test_backend_maps(void)
{
	int st = in_child(backend_maps);

	CHECK(WIFEXITED(st));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 4) {
		fprintf(stderr, "SKIP backend_maps: cannot create a BPF map here\n");
		return;
	}
	CHECK_EQ(WEXITSTATUS(st), 0);
}

static void test_backend_links(void)
{
	int st = in_child(backend_links);

	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 0);
}

static void test_foreign_abi_killed(void)
{
#ifdef __X32_SYSCALL_BIT
	int st = in_child(foreign_abi_killed);

	CHECK(WIFSIGNALED(st));
	CHECK_EQ(WTERMSIG(st), SIGSYS);
#endif
}

int main(void)
{
	RUN(test_relay_works);
	RUN(test_intruder_refused);
	RUN(test_backend_maps);
	RUN(test_backend_links);
	RUN(test_foreign_abi_killed);
	UNIT_MAIN_END();
}
