// SPDX-License-Identifier: MIT
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/nft.h"
#include "io/log.h"

static bool nft_open_done;

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

int kcpx_nft_open(void)
{
	char s[512];
	int pid = (int)getpid(), err;

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
	err = nft_run(s);
	if (err)
		kcpx_io_logf(0, "--tcp: nftables table " KCPX_NFT_PREFIX "%d not created: %s", pid,
			     err == -ENOENT ? "no nft command (apt-get install nftables)"
					    : "nft failed");
	else
		nft_open_done = true;
	return err;
}

static int port_cmd(const char *verb, uint16_t port)
{
	char s[128];

	if (!nft_open_done)
		return -ENOENT;
	snprintf(s, sizeof(s), "%s element inet " KCPX_NFT_PREFIX "%d ports { %u }\n", verb,
		 (int)getpid(), port);
	return nft_run(s);
}

int kcpx_nft_port_add(uint16_t port)
{
	return port_cmd("add", port);
}

int kcpx_nft_port_del(uint16_t port)
{
	return port_cmd("delete", port);
}

static int delete_table(int pid)
{
	char s[128];

	snprintf(s, sizeof(s), "delete table inet " KCPX_NFT_PREFIX "%d\n", pid);
	return nft_run(s);
}

void kcpx_nft_close(void)
{
	if (!nft_open_done)
		return;
	delete_table((int)getpid());
	nft_open_done = false;
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
