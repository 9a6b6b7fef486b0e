/* SPDX-License-Identifier: MIT */
/*
 * Files kcpx appends to as root (--log, --snmplog): never through a symlink, never a
 * file someone else owns or has a second name for, created 0600. A path in a world-
 * writable directory (/tmp) must not let another user point root's writes at
 * /etc/shadow. Header-only so the unit tests that build app/snmp.c alone link.
 */
#ifndef KCPX_IO_FILE_H
#define KCPX_IO_FILE_H

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Open PATH for appending, creating it 0600. Returns the fd or -errno: -ELOOP for a
 * symlink, -EPERM for a file owned by another uid or with more than one link,
 * -EINVAL for something that is not a regular file. */
static inline int kcpx_file_append(const char *path)
{
	struct stat st;
	int fd, err;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		err = -errno;
	else if (!S_ISREG(st.st_mode))
		err = -EINVAL;
	else if (st.st_uid != geteuid() || st.st_nlink > 1)
		err = -EPERM;
	else
		return fd;
	close(fd);
	return err;
}

/* Why kcpx_file_append refused, for the message that names the flag. */
static inline const char *kcpx_file_why(int err)
{
	switch (err) {
	case -ELOOP:
		return "it is a symlink (refused: kcpx never writes through one)";
	case -EPERM:
		return "it belongs to another user or has another name (hard link): refused";
	case -EINVAL:
		return "not a regular file";
	default:
		return strerror(-err);
	}
}

#endif
