/* SPDX-License-Identifier: BSD-3-Clause */
#include "zerocopy.h"

#include <rte_malloc.h>
#include <rte_ring.h>

#include "virtqueue.h"
#include "vhu_log.h"

/* Slots a ring may hand out at once: half of it, so the other half keeps moving. */
#define HELD_SHARE_DIVISOR 2
/* Slots completed per look at the done ring. */
#define REAP_BURST 64

struct vhu_zc_pool {
	uint32_t refcnt;		/* the ring's, and one per slot handed out */
	uint32_t nslots;
	uint32_t nfree;			/* ring's lcore only, as are free[] and nheld */
	uint32_t nheld;
	uint32_t *free;			/* indices of free slots */
	/*
	 * Indices of the slots whose mbufs are gone (any lcore -> ring's):
	 * uint32_t elements copied from and to uint32_t objects. rte_ring's
	 * pointer API copies void * objects through uint64_t lvalues, which
	 * strict aliasing lets the compiler drop: clang -O2 leaves the last
	 * pointer of a burst whose length is not a multiple of four unwritten.
	 */
	struct rte_ring *done;
	struct vhu_zc_slot slots[];
};

static void
pool_put(struct vhu_zc_pool *pool)
{
	if (__atomic_sub_fetch(&pool->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
		rte_free(pool);
}

/*
 * The last mbuf pointing into a held chain was freed, on whatever lcore:
 * let go of the memory if the slot holds a reference of its own, and tell
 * the ring's lcore, which completes the chain.
 */
static void
mbufs_freed(void *addr __rte_unused, void *opaque)
{
	struct vhu_zc_slot *slot = opaque;
	struct vhu_zc_pool *pool = slot->pool;
	uint32_t index = (uint32_t)(slot - pool->slots);

	/* against vhu_zc_memory_leaving() turning the ring's reference into the slot's */
	if (__atomic_exchange_n(&slot->mem_ref, VHU_ZC_MEM_NONE, __ATOMIC_ACQ_REL) ==
	    VHU_ZC_MEM_OWNED)
		vhu_mem_table_put(slot->mem);
	/* Never full: it has room for every slot, and a slot is in it at most once. */
	rte_ring_mp_enqueue_elem(pool->done, &index, sizeof(index));
	pool_put(pool);
}

bool
vhu_zc_buffer(const struct rte_mbuf_ext_shared_info *shinfo)
{
	return shinfo->free_cb == mbufs_freed;
}

int
vhu_zc_ring_started(struct vhu_vring *vr)
{
	uint32_t nslots = RTE_MAX(vr->size / HELD_SHARE_DIVISOR, 1u);
	uint32_t ring_count = rte_align32pow2(nslots + 1);
	size_t head = RTE_ALIGN_CEIL(sizeof(struct vhu_zc_pool) +
				     nslots * sizeof(struct vhu_zc_slot) +
				     nslots * sizeof(uint32_t), RTE_CACHE_LINE_SIZE);
	ssize_t ring_size = rte_ring_get_memsize_elem(sizeof(uint32_t), ring_count);
	struct vhu_zc_pool *pool;

	if (vr->zc_threshold == 0 || vr->zc != NULL)
		return 0;
	pool = ring_size < 0 ? NULL :
	       rte_zmalloc_socket("vhu_zc_pool", head + (size_t)ring_size, RTE_CACHE_LINE_SIZE,
				  vr->socket_id);
	if (pool == NULL) {
		VHU_LOG(ERR, "%s: ring %u: no memory for zero-copy; frames will be copied",
			vr->port_name, vr->index);
		return -1;
	}
	pool->refcnt = 1;
	pool->nslots = nslots;
	pool->free = (uint32_t *)&pool->slots[nslots];
	pool->done = (struct rte_ring *)((uint8_t *)pool + head);
	rte_ring_init(pool->done, "vhu_zc_done", ring_count, RING_F_SC_DEQ);
	for (uint32_t i = 0; i < nslots; i++) {
		pool->slots[i].pool = pool;
		pool->free[i] = nslots - 1 - i;
	}
	pool->nfree = nslots;
	vr->zc = pool;
	return 0;
}

/* Gives slot @slot's chain back to the guest if it is still held. */
static bool
give_back(struct vhu_vring *vr, struct vhu_zc_slot *slot)
{
	if (!slot->held)
		return false;
	vhu_vq_complete_id(vr, slot->id, slot->nslots, 0);
	slot->held = false;
	slot->pool->nheld--;
	return true;
}

uint32_t
vhu_zc_reap(struct vhu_vring *vr)
{
	struct vhu_zc_pool *pool = vr->zc;
	uint32_t total = 0;
	unsigned int n;

	if (pool == NULL)
		return 0;
	do {
		uint32_t done[REAP_BURST];

		n = rte_ring_sc_dequeue_burst_elem(pool->done, done, sizeof(done[0]), REAP_BURST,
						   NULL);
		for (unsigned int i = 0; i < n; i++) {
			total += give_back(vr, &pool->slots[done[i]]);
			pool->free[pool->nfree++] = done[i];
		}
	} while (n == REAP_BURST);
	return total;
}

void
vhu_zc_memory_leaving(struct vhu_vring *vr)
{
	struct vhu_zc_pool *pool = vr->zc;

	if (pool == NULL)
		return;
	/* Every borrowed slot points into the ring's table: earlier tables were left here. */
	for (uint32_t i = 0; i < pool->nslots; i++) {
		struct vhu_zc_slot *slot = &pool->slots[i];
		uint32_t borrowed = VHU_ZC_MEM_BORROWED;

		if (__atomic_load_n(&slot->mem_ref, __ATOMIC_RELAXED) != VHU_ZC_MEM_BORROWED)
			continue;
		/*
		 * The reference is taken before the slot says it owns one: from
		 * then on the last mbuf, freed on another lcore, drops it, and
		 * must not find the count at the ring's reference alone.
		 */
		vhu_mem_table_get(slot->mem);
		if (!__atomic_compare_exchange_n(&slot->mem_ref, &borrowed, VHU_ZC_MEM_OWNED, false,
						 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			vhu_mem_table_put(slot->mem);	/* freed meanwhile; the ring's keeps it */
	}
}

void
vhu_zc_ring_stopped(struct vhu_vring *vr, bool give_back_held)
{
	struct vhu_zc_pool *pool = vr->zc;
	if (pool == NULL)
		return;
	/* mbufs still out outlive the ring's hold on its table */
	vhu_zc_memory_leaving(vr);
	if (give_back_held && vhu_vq_mapped(vr)) {
		uint32_t completed = vhu_zc_reap(vr);

		for (uint32_t i = 0; i < pool->nslots; i++)
			completed += give_back(vr, &pool->slots[i]);
		if (completed > 0)
			vhu_vq_publish(vr);
	}
	vr->zc = NULL;
	pool_put(pool);
}

struct vhu_zc_slot *
vhu_zc_hold(struct vhu_vring *vr, const struct vhu_chain *c, uint16_t nsegs)
{
	struct vhu_zc_pool *pool = vr->zc;
	struct vhu_zc_slot *slot;

	if (pool == NULL || pool->nfree == 0)
		return NULL;
	slot = &pool->slots[pool->free[--pool->nfree]];
	/* reused only once reaped, after its mbufs_freed(): nothing else writes it now */
	slot->mem = vr->mem;
	__atomic_store_n(&slot->mem_ref, VHU_ZC_MEM_BORROWED, __ATOMIC_RELAXED);
	slot->id = c->id;
	slot->nslots = c->nslots;
	slot->held = true;
	slot->shinfo.free_cb = mbufs_freed;
	slot->shinfo.fcb_opaque = slot;
	rte_mbuf_ext_refcnt_set(&slot->shinfo, nsegs);
	__atomic_fetch_add(&pool->refcnt, 1, __ATOMIC_RELAXED);
	pool->nheld++;
	return slot;
}

uint32_t
vhu_zc_held(const struct vhu_vring *vr)
{
	return vr->zc != NULL ? vr->zc->nheld : 0;
}
