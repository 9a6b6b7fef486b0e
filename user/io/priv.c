// SPDX-License-Identifier: MIT
#include "io/priv.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

static int caps_set(uint64_t keep)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = {
		{ .effective = (uint32_t)keep, .permitted = (uint32_t)keep },
		{ .effective = (uint32_t)(keep >> 32), .permitted = (uint32_t)(keep >> 32) },
	};

	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

int kcpx_priv_drop(const char *user, uint64_t keep, const char **what)
{
	struct passwd *pw = NULL;
	int err;

	*what = "";
	if (user && *user) {
		errno = 0;
		pw = getpwnam(user);
		if (!pw) {
			*what = "looking the user up";
			return errno ? -errno : -ESRCH;
		}
	}
	if (geteuid() == 0 || pw) {
		/* the bounding set first: dropping from it needs CAP_SETPCAP, which goes next */
		for (int c = 0; c <= CAP_LAST_CAP; c++)
			if (!(keep & (1ull << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 &&
			    errno != EINVAL) {
				*what = "dropping capabilities from the bounding set";
				return -errno;
			}
		prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	}
	if (pw) {
		/* keep the permitted set across setuid, to cut it down to keep below */
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups(0, NULL) < 0 ||
		    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0) {
			*what = "taking the user's uid and gid";
			return -errno;
		}
		prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	}
	if (geteuid() == 0 || pw) {
		err = caps_set(keep);
		if (err) {
			*what = "setting the capabilities";
			return err;
		}
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		*what = "setting no_new_privs";
		return -errno;
	}
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	return 0;
}
