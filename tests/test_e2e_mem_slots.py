"""Memory slots (PROTOCOL_F_CONFIGURE_MEM_SLOTS): guest memory handed over
one region at a time (ADD_MEM_REG, REM_MEM_REG), as QEMU does once the back
end offers it, up to the 509 regions GET_MAX_MEM_SLOTS announces.

Scripted front ends (tests/harness/vhost_user_client.py): guest A on
eth_vhost0 with its memory cut into many regions, guest B on eth_vhost1 with
one (SET_MEM_TABLE); our testpmd forwards between the two ports. Frames cross
both ways byte-exact, so every ring and buffer of A is found among its
regions, buffers straddling two of them included. Regions come and go while
the rings run; taking away the one that holds A's rings stops them (link
down) until it is back. The refusals (overlap, unknown region, a slot too
many, not negotiated) are in the hostile catalogue (tests/test_hostile.py).
"""

from __future__ import annotations

import pytest

from harness import gen_frames
from harness.testpmd import vhost_vdev
from harness.vhost_user_client import (DEFAULT_PROTOCOL_FEATURES, PF_CONFIGURE_MEM_SLOTS,
                                       FrontEnd, Region, bit)

pytestmark = pytest.mark.ours_only

MEM_SIZE = 4 << 20
MAX_SLOTS = 509
FRAMES = 64


def cut(g: FrontEnd, size: int, count: int) -> list:
    """The first ``count`` pieces of ``size`` bytes of ``g``'s memory."""
    return [g.mem.region(i * size, size) for i in range(count)]


def exchange(a: FrontEnd, b: FrontEnd, seed: int):
    """Frames A -> B and B -> A arrive byte-exact, each once."""
    frames_a = gen_frames(FRAMES, seed=seed, tag=0xA)
    frames_b = gen_frames(FRAMES, seed=seed + 1, tag=0xB)
    a.send_frames(frames_a)
    assert b.receive(FRAMES, timeout=10, quiet=0.2) == frames_a, "A -> B"
    b.send_frames(frames_b)
    assert a.receive(FRAMES, timeout=10, quiet=0.2) == frames_b, "B -> A"


@pytest.fixture
def pair(launcher):
    """Our testpmd forwarding eth_vhost0 <-> eth_vhost1; (ours, sockets)."""
    socks = [launcher.path("vhA.sock"), launcher.path("vhB.sock")]
    ours = launcher.ours([vhost_vdev(0, socks[0]), vhost_vdev(1, socks[1])])
    ours.start_forwarding()
    yield ours, socks
    ours.stop_forwarding()
    launcher.finish_ours(ours, ports={"eth_vhost0": socks[0], "eth_vhost1": socks[1]})


def test_every_slot_carries_traffic(pair):
    """A's 4 MiB in 509 regions of 8 KiB (its rings in the first ones, its
    2 KiB buffers all over, some across two regions): GET_MAX_MEM_SLOTS
    says 509, every ADD_MEM_REG is accepted and frames cross both ways."""
    ours, socks = pair
    a = FrontEnd(socks[0], mem_size=MEM_SIZE,
                 protocol_features=DEFAULT_PROTOCOL_FEATURES | bit(PF_CONFIGURE_MEM_SLOTS))
    b = FrontEnd(socks[1])
    try:
        a.start(regions=cut(a, 8192, MAX_SLOTS))
        b.start()
        ours.wait_link_up(0)
        ours.wait_link_up(1)
        assert a.max_mem_slots == MAX_SLOTS
        exchange(a, b, seed=509)
    finally:
        for g in (a, b):
            g.close()
    assert ours.log.count("eth_vhost0: region added:") == MAX_SLOTS
    assert f"eth_vhost0: region added: gpa {a.mem.gpa(508 * 8192):#x} size 0x2000 " \
           f"uaddr {a.mem.uaddr(508 * 8192):#x} (509 in all)" in ours.log


def test_regions_come_and_go_while_running(pair):
    """A's memory in 4 regions of 1 MiB (rings in the first): the region
    holding no ring is removed and added again while the rings run, frames
    cross each time; removing the rings' region stops them (link down,
    the log says why), adding it back starts them where they were."""
    ours, socks = pair
    a = FrontEnd(socks[0], mem_size=MEM_SIZE,
                 protocol_features=DEFAULT_PROTOCOL_FEATURES | bit(PF_CONFIGURE_MEM_SLOTS))
    b = FrontEnd(socks[1])
    regions = cut(a, MEM_SIZE // 4, 4)
    # the buffers A's rings use: none in the last region (the allocator fills from the bottom)
    assert a.mem._next <= 3 * MEM_SIZE // 4
    try:
        a.start(regions=regions)
        b.start()
        ours.wait_link_up(0)
        ours.wait_link_up(1)
        exchange(a, b, seed=1)
        for rnd in range(3):
            a.remove_region(regions[3])
            exchange(a, b, seed=10 + rnd)
            a.add_region(regions[3])
            exchange(a, b, seed=20 + rnd)
        mark = len(ours.log)
        a.remove_region(regions[0])
        ours.wait_link(0, up=False)
        ours.wait_log(r"eth_vhost0: ring 0: descriptor area \(0x[0-9a-f]+\) of a 256-entry ring "
                      r"is not inside guest memory", start=mark)
        a.add_region(Region(regions[0].gpa, regions[0].size, regions[0].uaddr,
                            regions[0].mmap_offset))
        ours.wait_link_up(0)
        exchange(a, b, seed=30)
    finally:
        for g in (a, b):
            g.close()
    assert ours.log.count("eth_vhost0: region removed:") == 4
