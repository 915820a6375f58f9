/* fsprobe — system calls the shell cannot make, for the integration tests.
 *
 *   fsprobe handles-save DIR N FILE
 *       create DIR/f0..f(N-1) holding their own names, write their file
 *       handles to FILE (as NFS re-export, fanotify listeners and backup
 *       tools take them; xfstests' open_by_handle)
 *   fsprobe handles-open DIR FILE
 *       open every handle of FILE (on the mount holding DIR) and check each
 *       file holds its name; prints "ok N stale M".  Exit 0 when every
 *       handle opened the right file or failed with ESTALE, 1 when one
 *       opened a wrong file or failed otherwise (printed).
 *   fsprobe dio-race FILE ROUNDS
 *       a thread reads FILE buffered in a loop while asynchronous O_DIRECT
 *       writes (io_submit) replace its content ROUNDS times; after each
 *       write completes, a buffered read must see the new bytes (xfstests
 *       generic/451).  Exit 1 at the first stale byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
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

enum { DIO_SIZE = 64 << 10 };
static atomic_int dio_stop;

static void *dio_reader(void *arg)
{
	int fd = open(arg, O_RDONLY);
	char *b = malloc(DIO_SIZE);
	while (fd >= 0 && !atomic_load(&dio_stop))
		if (pread(fd, b, DIO_SIZE, 0) < 0)
			break;
	free(b);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int dio_race(const char *path, int rounds)
{
	char *buf = calloc(1, DIO_SIZE);
	void *al;
	aio_context_t ctx = 0;
	int b = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (b < 0 || pwrite(b, buf, DIO_SIZE, 0) != DIO_SIZE) {
		perror(path);
		return 2;
	}
	int d = open(path, O_RDWR | O_DIRECT);
	if (d < 0 || posix_memalign(&al, 4096, DIO_SIZE) != 0 || syscall(SYS_io_setup, 8, &ctx) < 0) {
		perror("O_DIRECT / io_setup");
		return 2;
	}
	pthread_t t;
	pthread_create(&t, NULL, dio_reader, (void *)path);
	int bad = 0;
	for (int i = 1; i <= rounds && !bad; i++) {
		char c = (char)('A' + i % 26);
		memset(al, c, DIO_SIZE);
		struct iocb cb = { .aio_fildes = (uint32_t)d, .aio_lio_opcode = IOCB_CMD_PWRITE,
				   .aio_buf = (uint64_t)(uintptr_t)al, .aio_nbytes = DIO_SIZE };
		struct iocb *cbs[1] = { &cb };
		struct io_event ev;
		if (syscall(SYS_io_submit, ctx, 1, cbs) != 1 ||
		    syscall(SYS_io_getevents, ctx, 1, 1, &ev, NULL) != 1 || ev.res != DIO_SIZE) {
			perror("io_submit");
			bad = 2;
			break;
		}
		if (pread(b, buf, DIO_SIZE, 0) != DIO_SIZE) {
			perror("pread");
			bad = 2;
			break;
		}
		for (int k = 0; k < DIO_SIZE; k++)
			if (buf[k] != c) {
				printf("round %d: stale byte at %d ('%c', expected '%c')\n", i, k, buf[k], c);
				bad = 1;
				break;
			}
	}
	atomic_store(&dio_stop, 1);
	pthread_join(t, NULL);
	syscall(SYS_io_destroy, ctx);
	if (!bad)
		printf("%d rounds, no stale data\n", rounds);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "handles-save") == 0)
		return save(argv[2], atoi(argv[3]), argv[4]);
	if (argc == 4 && strcmp(argv[1], "handles-open") == 0)
		return use(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "dio-race") == 0)
		return dio_race(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: fsprobe handles-save DIR N FILE | handles-open DIR FILE | dio-race FILE ROUNDS\n");
	return 2;
}
