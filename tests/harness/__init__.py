"""End-to-end test harness for the eth_vhost PMD: testpmd driver, frame
generation/comparison, PMD selection, sanitizer checks and traffic flows."""

from .frames import (JUMBO_FRAME, MAX_FRAME, MIN_FRAME, assert_frames_equal, first_mismatch,
                     gen_frames, gen_jumbo_mix, hexdiff, make_frame, read_pcap, total_bytes,
                     write_pcap)
from .launcher import DEFAULT_APP_ARGS, Launcher
from .pmd import (DEFAULT_PMD_SO, REPO_ROOT, PmdSelection, assert_driver_identity,
                  driver_identity_problems)
from .testpmd import (OUR_LCORES, PEER_LCORES, PROMPT, TestPmd, TestPmdError, make_file_prefix,
                      parse_port_info, parse_port_stats, pcap_vdev, vhost_vdev, virtio_user_vdev)

__all__ = [
    "JUMBO_FRAME", "MAX_FRAME", "MIN_FRAME", "assert_frames_equal", "first_mismatch", "gen_frames",
    "gen_jumbo_mix", "hexdiff", "make_frame", "read_pcap", "total_bytes", "write_pcap",
    "DEFAULT_APP_ARGS", "Launcher", "DEFAULT_PMD_SO", "REPO_ROOT", "PmdSelection",
    "assert_driver_identity", "driver_identity_problems", "OUR_LCORES", "PEER_LCORES", "PROMPT",
    "TestPmd", "TestPmdError", "make_file_prefix", "parse_port_info", "parse_port_stats",
    "pcap_vdev", "vhost_vdev", "virtio_user_vdev",
]
