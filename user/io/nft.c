// SPDX-License-Identifier: MIT
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/nft.h"
#include "io/child.h"
#include "io/log.h"

/* Run `nft -f -` on the script; its complaints go to our stderr. 0 or -errno. */
static int nft_run(const char *script)
{
	FILE *p;
	int st;

	p = popen("nft -f - 2>&1", "w");
	if (!p)
		return -errno;
	fputs(script, p);
	st = pclose(p);
	if (st < 0)
		return -errno;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		return -ENOENT;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* The table of daemon pid: created, a port added or deleted, or the table deleted. */
static int nft_table(int pid)
{
	char s[512];

	snprintf(s, sizeof(s),
		 "table inet " KCPX_NFT_PREFIX "%d {\n"
		 "  set ports { type inet_service; }\n"
		 "  chain out {\n"
		 "    type filter hook output priority 0; policy accept;\n"
		 "    tcp sport @ports ip ttl 1 drop\n"
		 "    tcp sport @ports ip6 hoplimit 1 drop\n"
		 "  }\n"
		 "}\n",
		 pid);
	return nft_run(s);
}

static int nft_port(int pid, const char *verb, uint16_t port)
{
	char s[128];

	snprintf(s, sizeof(s), "%s element inet " KCPX_NFT_PREFIX "%d ports { %u }\n", verb, pid,
		 port);
	return nft_run(s);
}

static int delete_table(int pid)
{
	char s[128];

	snprintf(s, sizeof(s), "delete table inet " KCPX_NFT_PREFIX "%d\n", pid);
	return nft_run(s);
}

/*
 * The helper. Requests are fixed-size records; each is answered with an int (0 or
 * -errno). Only these three verbs exist: the daemon cannot make it run anything else.
 */
enum { NFT_ADD = 1, NFT_DEL, NFT_QUIT };
struct nft_req {
	int verb;
	int port;
};

static int nft_fd = -1; /* the daemon's end of the helper's socket */
static pid_t nft_pid;

static void nft_helper(int fd, int pid)
{
	struct nft_req r;
	int err;

	/* a ^C reaches the whole process group: the daemon asks for the table's deletion
	 * itself, and a daemon killed outright leaves it to `kcpx down` */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	prctl(PR_SET_DUMPABLE, 0);
	err = nft_table(pid);
	if (write(fd, &err, sizeof(err)) != sizeof(err) || err)
		_exit(0);
	while (read(fd, &r, sizeof(r)) == sizeof(r)) {
		if (r.verb == NFT_QUIT) {
			err = delete_table(pid);
			if (write(fd, &err, sizeof(err)) < 0)
				break;
			break;
		}
		if ((r.verb != NFT_ADD && r.verb != NFT_DEL) || r.port <= 0 || r.port > 65535)
			err = -EINVAL;
		else
			err = nft_port(pid, r.verb == NFT_ADD ? "add" : "delete", (uint16_t)r.port);
		if (write(fd, &err, sizeof(err)) != sizeof(err))
			break;
	}
	_exit(0);
}

/* One request, one answer. */
static int nft_call(int verb, int port)
{
	struct nft_req r = { verb, port };
	int err;

	if (nft_fd < 0)
		return -ENOENT;
	if (send(nft_fd, &r, sizeof(r), MSG_NOSIGNAL) != sizeof(r))
		return -EPIPE;
	if (read(nft_fd, &err, sizeof(err)) != sizeof(err))
		return -EPIPE;
	return err;
}

int kcpx_nft_open(void)
{
	int pid = (int)getpid(), fd, err = -EIO;
	pid_t child;

	fflush(NULL);
	child = kcpx_child_fork(&fd);
	if (child < 0)
		return child;
	if (child == 0) {
		/* hold nothing of the daemon's: its links and sockets go when it does */
		if (dup2(fd, 3) < 0)
			_exit(0);
		syscall(__NR_close_range, 4, ~0u, 0);
		nft_helper(3, pid);
	}
	if (read(fd, &err, sizeof(err)) != sizeof(err))
		err = -EIO;
	if (err) {
		close(fd);
		kcpx_child_reap(child);
		kcpx_io_logf(0, "--tcp: nftables table " KCPX_NFT_PREFIX "%d not created: %s", pid,
			     err == -ENOENT ? "no nft command (apt-get install nftables)"
					    : "nft failed");
		return err;
	}
	nft_fd = fd;
	nft_pid = child;
	return 0;
}

int kcpx_nft_port_add(uint16_t port)
{
	return nft_call(NFT_ADD, port);
}

int kcpx_nft_port_del(uint16_t port)
{
	return nft_call(NFT_DEL, port);
}

void kcpx_nft_close(void)
{
	if (nft_fd < 0)
		return;
	nft_call(NFT_QUIT, 0);
	close(nft_fd);
	nft_fd = -1;
	kcpx_child_reap(nft_pid);
}

/* A kcpx process with this PID runs (a reused PID of another program does not count). */
static bool kcpx_alive(int pid)
{
	char path[64], comm[64] = "";
	FILE *f;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = 0;
	fclose(f);
	return !strncmp(comm, "kcpx", 4);
}

int kcpx_nft_down_stale(void)
{
	char line[256];
	int n = 0, pids[256], npids = 0;
	FILE *p;

	p = popen("nft list tables inet 2>/dev/null", "r");
	if (!p)
		return -errno;
	while (fgets(line, sizeof(line), p)) {
		int pid;

		if (sscanf(line, "table inet " KCPX_NFT_PREFIX "%d", &pid) == 1 && pid > 0 &&
		    npids < (int)(sizeof(pids) / sizeof(pids[0])))
			pids[npids++] = pid;
	}
	pclose(p);
	for (int i = 0; i < npids; i++) {
		if (pids[i] == (int)getpid() || kcpx_alive(pids[i]))
			continue;
		if (!delete_table(pids[i])) {
			kcpx_io_logf(1, "--tcp: removed the nftables table of a dead kcpx (pid %d)",
				     pids[i]);
			n++;
		}
	}
	return n;
}
