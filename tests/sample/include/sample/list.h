#ifndef SAMPLE_LIST_H
#define SAMPLE_LIST_H
#include <stddef.h>

struct list_head {
	struct list_head *next, *prev;
};

#define list_entry(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

void list_init(struct list_head *h);
void list_add_tail(struct list_head *h, struct list_head *n);
void list_del(struct list_head *n);
size_t list_count(const struct list_head *h);
#endif
