/* Unit tests for cache/io.c: whole transfers through pipes that deliver a
 * little at a time, interrupted by signals (no SA_RESTART), at offsets and
 * at the file offset; partial writes; reopening through /proc/self/fd. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "io.h"

#define LEN (256 * 1024)

static atomic_int signals;

static void on_alarm(int sig)
{
	(void)sig;
	atomic_fetch_add(&signals, 1);
}

/* SIGALRM every 200 µs, without SA_RESTART: blocking pipe reads and writes
 * fail with EINTR (or return short) while it runs. */
static void interrupts_start(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
	struct itimerval it = { { 0, 200 }, { 0, 200 } };
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	atomic_store(&signals, 0);
}

static void interrupts_stop(void)
{
	struct itimerval it = { 0 };
	setitimer(ITIMER_REAL, &it, NULL);
	signal(SIGALRM, SIG_IGN);
}

static uint8_t *pattern(size_t len)
{
	uint8_t *b = malloc(len);
	assert_non_null(b);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(i * 31 + i / 251);
	return b;
}

static void pause_us(long us)
{
	struct timespec ts = { 0, us * 1000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

struct trickle {
	int fd;
	const uint8_t *data;
	size_t len;
	size_t step;
};

/* Writes the data in steps, pausing between them, then closes (also when
 * the reader went away: the test sees the short read). */
static void *trickle_writer(void *arg)
{
	struct trickle *t = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* the signals are for the reader */
	for (size_t off = 0; off < t->len;) {
		size_t n = t->len - off < t->step ? t->len - off : t->step;
		ssize_t w = write(t->fd, t->data + off, n);
		if (w <= 0)
			break;
		off += (size_t)w;
		pause_us(300);
	}
	close(t->fd);
	return NULL;
}

/* Reads in steps, pausing between them, into t->data (as a buffer). */
static void *trickle_reader(void *arg)
{
	struct trickle *t = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	uint8_t *out = (uint8_t *)t->data;
	size_t got = 0;
	for (;;) {
		ssize_t r = read(t->fd, out + got, t->len - got < t->step ? t->len - got : t->step);
		if (r <= 0)
			break;
		got += (size_t)r;
		pause_us(300);
	}
	t->len = got;
	close(t->fd);
	return NULL;
}

/* A pipe delivering 1000 bytes at a time, signals arriving all along: one
 * call gets everything, then the end of the file. */
static void test_read_whole_through_pieces_and_signals(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	int p[2];
	uint8_t *want = pattern(LEN), *got = calloc(1, LEN + 1);
	assert_int_equal(pipe(p), 0);
	struct trickle t = { p[1], want, LEN, 1000 };
	pthread_t th;
	interrupts_start();
	assert_int_equal(pthread_create(&th, NULL, trickle_writer, &t), 0);
	ssize_t n = cache_io_read(p[0], got, LEN, CACHE_IO_CUR);
	int sigs = atomic_load(&signals);
	if (n != LEN) /* let the writer go */
		close(p[0]);
	pthread_join(th, NULL);
	interrupts_stop();
	assert_int_equal(n, LEN);
	assert_memory_equal(got, want, LEN);
	print_message("  %d signals during the read\n", sigs);
	assert_true(sigs > 0);
	/* the writer closed: the end of the file */
	assert_int_equal(cache_io_read(p[0], got, 10, CACHE_IO_CUR), 0);
	close(p[0]);
	free(want);
	free(got);
}

/* The same for a write into a pipe that a slow reader drains. */
static void test_write_whole_through_pieces_and_signals(void **state)
{
	int p[2];
	uint8_t *data = pattern(LEN), *back = calloc(1, LEN);
	assert_int_equal(pipe(p), 0);
	struct trickle t = { p[0], back, LEN, 4096 };
	pthread_t th;
	interrupts_start();
	assert_int_equal(pthread_create(&th, NULL, trickle_reader, &t), 0);
	int r = cache_io_write(p[1], data, LEN, CACHE_IO_CUR);
	int sigs = atomic_load(&signals);
	close(p[1]);
	pthread_join(th, NULL);
	interrupts_stop();
	assert_int_equal(r, 0);
	assert_int_equal(t.len, LEN);
	assert_memory_equal(back, data, LEN);
	print_message("  %d signals during the write\n", sigs);
	assert_true(sigs > 0);
	free(data);
	free(back);
}

/* A reader that goes away after a part: the part is reported by
 * cache_io_write_some, the error by cache_io_write. */
static void test_partial_write(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	int p[2];
	uint8_t *data = pattern(LEN), *back = calloc(1, LEN);
	assert_int_equal(pipe(p), 0);
	assert_true(fcntl(p[1], F_GETPIPE_SZ) < LEN);
	struct trickle t = { p[0], back, 8192, 4096 }; /* reads 8 KiB, closes */
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, trickle_reader, &t), 0);
	ssize_t n = cache_io_write_some(p[1], data, LEN, CACHE_IO_CUR);
	pthread_join(th, NULL);
	print_message("  %zd of %d bytes written before EPIPE\n", n, LEN);
	assert_true(n > 0 && n < LEN);
	assert_memory_equal(back, data, 8192);
	/* nothing more can go: the error itself */
	assert_int_equal(cache_io_write_some(p[1], data, LEN, CACHE_IO_CUR), -EPIPE);
	assert_int_equal(cache_io_write(p[1], data, LEN, CACHE_IO_CUR), -EPIPE);
	assert_int_equal(cache_io_write_some(p[1], data, 0, CACHE_IO_CUR), 0);
	close(p[1]);
	free(data);
	free(back);
}

/* At an offset the file offset stays; at CACHE_IO_CUR it moves. */
static void test_offsets_and_errors(void **state)
{
	char path[] = "/tmp/casfs-io-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	uint8_t *data = pattern(LEN), *got = malloc(LEN);
	assert_int_equal(cache_io_write(fd, data, LEN, 1000), 0);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
	assert_int_equal(cache_io_read(fd, got, LEN, 1000), LEN);
	assert_memory_equal(got, data, LEN);
	/* past the end: what there is */
	assert_int_equal(cache_io_read(fd, got, LEN, 1000 + LEN - 10), 10);
	assert_int_equal(cache_io_read(fd, got, LEN, 5 * LEN), 0);
	/* at the file offset */
	assert_int_equal(cache_io_write(fd, "head", 4, CACHE_IO_CUR), 0);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 4);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(cache_io_read(fd, got, 4, CACHE_IO_CUR), 4);
	assert_memory_equal(got, "head", 4);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 4);
	close(fd);
	/* errors are -errno */
	assert_int_equal(cache_io_read(fd, got, 1, 0), -EBADF);
	assert_int_equal(cache_io_write(fd, got, 1, 0), -EBADF);
	assert_int_equal(cache_io_write_some(fd, got, 1, 0), -EBADF);
	free(data);
	free(got);
}

static void test_reopen(void **state)
{
	char path[] = "/tmp/casfs-io-XXXXXX";
	int w = mkstemp(path);
	assert_true(w >= 0);
	assert_int_equal(cache_io_write(w, "content", 7, 0), 0);
	int opath = open(path, O_PATH | O_CLOEXEC);
	assert_true(opath >= 0);
	unlink(path); /* reached through the fd, not the name */
	int proc = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(proc >= 0);
	char got[8] = { 0 };
	for (int via = 0; via < 2; via++) {
		int fd = cache_io_reopen(via ? -1 : proc, opath, O_RDONLY | O_NOFOLLOW);
		assert_true(fd >= 0);
		assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		assert_int_equal(cache_io_read(fd, got, 7, 0), 7);
		assert_memory_equal(got, "content", 7);
		close(fd);
	}
	int fd = cache_io_reopen(proc, opath, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(cache_io_write(fd, "C", 1, 0), 0);
	close(fd);
	assert_int_equal(cache_io_read(w, got, 7, 0), 7);
	assert_memory_equal(got, "Content", 7);
	close(w);
	close(opath);
	assert_int_equal(cache_io_reopen(proc, opath, O_RDONLY), -ENOENT); /* no such fd */
	close(proc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_whole_through_pieces_and_signals),
		cmocka_unit_test(test_write_whole_through_pieces_and_signals),
		cmocka_unit_test(test_partial_write),
		cmocka_unit_test(test_offsets_and_errors),
		cmocka_unit_test(test_reopen),
	};
	return cmocka_run_group_tests_name("io", tests, NULL, NULL);
}
