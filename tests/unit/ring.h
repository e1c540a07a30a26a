/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The ring under test, in either layout: the fixture of the data-path unit
 * tests. test_virtqueue.c runs every scenario the two layouts share once per
 * layout; test_split.c and test_packed.c hold what only one layout has.
 *
 * The test plays the guest driver through its layout's ops (ring_split.c,
 * ring_packed.c, each with what only its own tests use in ring_split.h and
 * ring_packed.h): it makes chains of buffers available, reads used entries
 * back in order, and says when it wants to be interrupted. Positions are
 * counted in ring slots from where the driver started (R.start): a split
 * chain takes one slot of the available ring, a packed chain one slot per
 * descriptor in the ring (so an indirect one takes one).
 *
 * Region 0 (guest_fixture.h) holds the ring's areas below RING_INDIR_OFF,
 * then indirect tables, then buffers from RING_BUF_OFF (and the areas of
 * the rings rings_add() adds).
 *
 * Like guest_fixture.h, nothing here uses check.h: the helpers return what
 * they found and print what differs; the tests assert.
 */
#ifndef VHU_UNIT_RING_H
#define VHU_UNIT_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "vring.h"

#include "guest_fixture.h"

#define RING_INDIR_OFF	0x90000u
#define RING_BUF_OFF	0x100000u

/* Most descriptors in a chain tx_post() and rx_post() make. */
#define CHAIN_MAX	16

#define F_NEXT	VRING_DESC_F_NEXT
#define F_WRITE	VRING_DESC_F_WRITE
#define F_INDIR	VRING_DESC_F_INDIRECT

/* One descriptor of a chain to post: the driver adds NEXT and its layout's bits. */
struct dspec {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;		/* WRITE, INDIRECT, or extra bits */
};

/*
 * A chain the driver made available: @id is what its used entry names (split:
 * the head descriptor; packed: the buffer id); it took @nslots slots from
 * @slot (split: of the available ring; packed: of the descriptor ring) in lap
 * @lap, @at slots after the start.
 */
struct posted {
	uint16_t id;
	uint16_t nslots;
	uint32_t at;
	uint16_t slot;
	uint32_t lap;
};

/* An RX chain and its buffers, for reading back what the device wrote. */
struct rx_chain {
	struct posted p;
	unsigned int n;
	uint8_t *buf[CHAIN_MAX];
	uint32_t len[CHAIN_MAX];
};

/* A malformed TX chain: @build makes it available. */
struct bad_case {
	const char *name;
	struct posted (*build)(void);
};

#define BAD_CASE(fn) { #fn, fn }

/* The guest driver of one layout. */
struct ring_ops {
	const char *name;
	uint64_t features;	/* the layout's feature bit */
	/*
	 * The largest ring whose areas fit below RING_INDIR_OFF, where
	 * ring_memory() lays the ring out; and the bytes the areas of a ring
	 * of up to @room entries take.
	 */
	uint32_t room;
	uint32_t (*areas_size)(uint32_t room);
	/*
	 * Lays the ring out in guest memory from R.areas on, with room for
	 * R.room entries, the driver at R.start; returns its addresses.
	 */
	struct vhu_vring_addr_config (*lay_out)(void);
	/*
	 * The driver's state (split: S, packed: P): its first driver_size()
	 * bytes are the current ring's, kept aside while another ring is
	 * current (ring_select()).
	 */
	void *driver;
	size_t (*driver_size)(void);
	/*
	 * SET_VRING_BASE for the driver where it is, all it made available
	 * used; NULL: the ring resumes from guest memory.
	 */
	uint32_t (*base)(void);
	/* Makes a chain of @n descriptors available. */
	struct posted (*post)(const struct dspec *d, unsigned int n);
	/* Writes an indirect table of @n descriptors at @t (any alignment). */
	void (*table)(void *t, const struct dspec *d, unsigned int n);
	/* The next used entry returns @p with @len bytes written; the driver moves past it. */
	bool (*used_is)(const struct posted *p, uint32_t len);
	/* Nothing more used where the driver looks next. */
	bool (*none_used)(void);
	/*
	 * What the driver can read of the ring is as at the last snapshot,
	 * but for the used entries it read since.
	 */
	void (*snapshot)(void);
	bool (*unchanged)(void);
	/* The device's next available and next used entries are @at slots from the start. */
	bool (*device_at)(uint32_t at);
	/* Interrupts wanted or not, without EVENT_IDX (split: flags; packed: driver event). */
	void (*interrupts)(bool on);
	/* EVENT_IDX: a call wanted once the used entry @at slots from the start is written. */
	void (*call_at)(uint32_t at);
	/* The device told the driver not to notify it: it polls. */
	bool (*polled)(void);
	/*
	 * Whether the driver must kick for the chains it made available since
	 * it last asked (its layout's rule, with EVENT_IDX or without).
	 */
	bool (*must_kick)(void);
	/* The ring's areas are the memory table's mappings of where the ring was laid out. */
	bool (*mapped)(void);
	/* The front end moves one of the ring's areas out of guest memory, or back. */
	void (*misplace)(bool outside);
	/* Malformed TX chains only this layout has. */
	const struct bad_case *bad_tx;
	unsigned int nbad_tx;
};

extern const struct ring_ops split_ops;
extern const struct ring_ops packed_ops;

/* The current test's ring; ring_memory() starts it afresh. */
struct ring {
	const struct ring_ops *ops;	/* the layout, kept from one test to the next */
	bool active;
	struct vhu_mem_table *mem;	/* our own reference (NULL: the ring is a port's) */
	struct vhu_vring *vr;		/* the ring under test: the fixture's, or a port's */
	uint32_t areas;			/* where its areas start in region 0 */
	uint32_t room;			/* the largest ring they have room for */
	uint32_t size;
	uint32_t start;			/* where the driver started, in slots */
	uint64_t features;		/* negotiated, the layout's bit included */
	uint32_t posted;		/* slots made available since the start */
	struct vhu_vring_addr_config addr;	/* where the ring was laid out */
	int kick;			/* the driver's kick eventfd (the ring has a copy) */
	struct vhu_iotlb *iotlb;	/* behind a vIOMMU (ring_behind_iommu), or NULL */
	int iommu_channel;		/* the front end's end of the IOTLB's request channel */
	uint32_t kick_checked;		/* R.posted when the driver last asked must_kick */
};

extern struct ring R;

/* The layout of the rings to come. */
void ring_use(const struct ring_ops *ops);

/*
 * Fresh guest memory and a ring of @size entries laid out at its start, the driver
 * @start slots from slot 0 of its first lap (split: its 16-bit index, so any
 * value; packed: a slot, plus @size when its wrap counter starts at 0).
 * Returns the ring's addresses; nothing is set up yet.
 */
struct vhu_vring_addr_config ring_memory(uint32_t size, uint64_t features, uint32_t start);
/*
 * Sets the ring laid out by ring_memory() up as the control thread does,
 * with SET_VRING_BASE @base when @send_base. False when it did not become ready.
 */
bool ring_start(const struct vhu_vring_addr_config *addr, bool send_base, uint32_t base);
/*
 * The front end goes: its session ends, the ring is reset (what outlives
 * sessions stays: its interrupt fd).
 */
void ring_session_end(void);
/*
 * A new front end sets the ring up again, in the same guest memory, where
 * the driver is (it must have caught up), with a new kick fd. False when the
 * ring did not become ready.
 */
bool ring_session_resume(void);
/* Both, with the base the layout sends for the driver at @start. */
bool ring_setup_at(uint32_t size, uint64_t features, uint32_t start);
bool ring_setup(uint32_t size, uint64_t features);
/* Like the session: the ring follows our memory table and @features (the layout's bit added). */
void ring_refresh(uint64_t features);
/* The session's memory and features for the ring, as the control thread gives them. */
void ring_rebase(struct vhu_mem_table *mem, uint64_t features);
/*
 * The ring behind a vIOMMU, as on ACCESS_PLATFORM: its areas translated
 * (IOVA = their front-end address), no buffer yet; the misses it asks go
 * to R.iommu_channel (ring_misses_asked() reads them). False if it is not
 * ready then.
 */
bool ring_behind_iommu(void);
/* Translations of the buffers' pages, with access @perm (VHU_IOTLB_*), IOVA = guest address. */
bool ring_translate_buffers(uint8_t perm);
/* The misses asked since the last call: their IOVAs (up to @max) and count. */
unsigned int ring_misses_asked(uint64_t *iova, unsigned int max);
/* Frees what the test left; false (printed) when the ring or the pool kept something. */
bool ring_teardown(void);

/* ---- several rings ---- */

/*
 * More rings in the session of the current one, as a front end sets up a
 * port's other queues: @n in all, the current one first. Each added ring is
 * set up as the current one was (layout, size, features, start), in the
 * same guest memory and memory table, its areas taken from the buffer
 * space, with a kick fd of its own and a copy of the guest's call fd; the
 * added rings' struct vhu_vring lie side by side, as a port's do. False
 * when one did not become ready. ring_teardown() ends them all.
 */
bool rings_add(unsigned int n);
/* Ring @i (0: the first) becomes the current ring: R, G.vr and its layout's driver. */
void ring_select(unsigned int i);

/* For a layout's post: chain @id, of @nslots slots, is made available where the driver is. */
struct posted ring_posted(uint16_t id, uint16_t nslots);

/* ---- chains ---- */

struct posted post(const struct dspec *d, unsigned int n);
struct posted post1(uint64_t addr, uint32_t len, uint16_t flags);
/* An indirect table of @n descriptors at @t (any alignment), or a fresh one; its guest address. */
uint64_t indirect_table_at(void *t, const struct dspec *d, unsigned int n);
uint64_t indirect_table(const struct dspec *d, unsigned int n);
/* A fresh table of one descriptor, with @flags, holding a whole TX frame (12-byte header). */
uint64_t indirect_frame_table(uint16_t flags);
/* A chain of one descriptor naming a fresh indirect table of @n. */
struct posted post_indirect(const struct dspec *d, unsigned int n);

/*
 * A TX chain of buffers of @lens bytes holding a virtio-net header of the
 * negotiated length, asking for no offload, then @frame (see tx_buf()).
 */
struct posted tx_post(const uint32_t *lens, unsigned int n, const uint8_t *frame);
/* One descriptor holding the header and the frame. */
struct posted tx_simple(const uint8_t *frame, uint32_t frame_len);
/* An RX chain of fresh buffers of @lens bytes, descriptor i with flags @flags[i]. */
struct rx_chain rx_post_flags(const uint32_t *lens, const uint16_t *flags, unsigned int n);
/* The same with @flags on every descriptor. */
struct rx_chain rx_post(const uint32_t *lens, unsigned int n, uint16_t flags);
/* One writable buffer. */
struct rx_chain rx_simple(uint32_t len);

/* The first @want bytes of @c's buffers, in chain order, into @out. */
void rx_read(const struct rx_chain *c, uint8_t *out, uint32_t want);
/* @c's buffers hold only SENTINEL bytes from byte @from on. */
bool rx_untouched_from(const struct rx_chain *c, uint32_t from);

/*
 * @n frames through the TX ring in one burst, each made available in one
 * descriptor and seen used; the calls that caused (99 when it went wrong).
 */
uint64_t tx_frames(unsigned int n);

/* ---- the layout's driver ---- */

static inline bool
used_is(const struct posted *p, uint32_t len)
{
	return R.ops->used_is(p, len);
}

static inline bool
none_used(void)
{
	return R.ops->none_used();
}

static inline void
ring_snapshot(void)
{
	R.ops->snapshot();
}

static inline bool
ring_unchanged(void)
{
	return R.ops->unchanged();
}

/* The device is at chain @p: it has neither taken nor completed it. */
static inline bool
device_at(const struct posted *p)
{
	return R.ops->device_at(p->at);
}

/* The device has taken and completed everything made available. */
static inline bool
caught_up(void)
{
	return R.ops->device_at(R.posted);
}

static inline void
interrupts(bool on)
{
	R.ops->interrupts(on);
}

static inline void
call_at(uint32_t at)
{
	R.ops->call_at(at);
}

#endif /* VHU_UNIT_RING_H */
