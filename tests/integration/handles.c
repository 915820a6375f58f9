/* handles — takes and uses file handles on a directory, as NFS re-export,
 * fanotify listeners and backup tools do (xfstests' open_by_handle):
 *
 *   handles save DIR N FILE   create DIR/f0..f(N-1) holding their own
 *                             names, write their handles to FILE
 *   handles open DIR FILE     open every handle of FILE (relative to the
 *                             mount holding DIR) and check each file
 *                             holds its name; prints "ok N stale M"
 *
 * Exit 0 when every handle opened the right file or failed with ESTALE;
 * 1 when one opened a wrong file or failed otherwise (printed). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rec {
	char name[32];
	int mnt_id;
	unsigned int bytes;
	int type;
	unsigned char h[MAX_HANDLE_SZ];
};

static int save(const char *dir, int n, const char *out)
{
	FILE *o = fopen(out, "wb");
	if (!o) {
		perror(out);
		return 1;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0) {
		perror(dir);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		struct rec r;
		memset(&r, 0, sizeof(r));
		snprintf(r.name, sizeof(r.name), "f%d", i);
		int fd = openat(dfd, r.name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, r.name, strlen(r.name)) != (ssize_t)strlen(r.name) || close(fd) < 0) {
			perror(r.name);
			return 1;
		}
		struct file_handle *fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
		fh->handle_bytes = MAX_HANDLE_SZ;
		if (name_to_handle_at(dfd, r.name, fh, &r.mnt_id, 0) < 0) {
			perror("name_to_handle_at");
			return 1;
		}
		r.bytes = fh->handle_bytes;
		r.type = fh->handle_type;
		memcpy(r.h, fh->f_handle, fh->handle_bytes);
		free(fh);
		fwrite(&r, sizeof(r), 1, o);
	}
	fclose(o);
	return 0;
}

static int use(const char *dir, const char *in)
{
	FILE *f = fopen(in, "rb");
	if (!f) {
		perror(in);
		return 1;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0) {
		perror(dir);
		return 1;
	}
	struct rec r;
	int ok = 0, stale = 0, bad = 0;
	while (fread(&r, sizeof(r), 1, f) == 1) {
		struct file_handle *fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
		fh->handle_bytes = r.bytes;
		fh->handle_type = r.type;
		memcpy(fh->f_handle, r.h, r.bytes);
		int fd = open_by_handle_at(dfd, fh, O_RDONLY);
		free(fh);
		if (fd < 0) {
			if (errno == ESTALE) {
				stale++;
				continue;
			}
			printf("%s: open_by_handle_at: %s\n", r.name, strerror(errno));
			bad++;
			continue;
		}
		char buf[64];
		ssize_t len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[len < 0 ? 0 : len] = '\0';
		if (strcmp(buf, r.name) != 0) {
			printf("%s: handle opened a file holding '%s'\n", r.name, buf);
			bad++;
		} else {
			ok++;
		}
	}
	fclose(f);
	printf("ok %d stale %d\n", ok, stale);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "save") == 0)
		return save(argv[2], atoi(argv[3]), argv[4]);
	if (argc == 4 && strcmp(argv[1], "open") == 0)
		return use(argv[2], argv[3]);
	fprintf(stderr, "usage: handles save DIR N FILE | handles open DIR FILE\n");
	return 2;
}
