#include "sample/list.h"

void list_init(struct list_head *h)
{
	h->next = h->prev = h;
}

void list_add_tail(struct list_head *h, struct list_head *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

void list_del(struct list_head *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

size_t list_count(const struct list_head *h)
{
	size_t n = 0;
	for (const struct list_head *p = h->next; p != h; p = p->next)
		n++;
	return n;
}
