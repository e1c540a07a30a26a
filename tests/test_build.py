"""The plugin as built: what dpdk-pmdinfo.py reports, what it links, what it exports.

These hold for the .so selected by VHU_PMD (our build by default).
"""
import glob
import json
import re
import subprocess

import pytest

pytestmark = pytest.mark.ours_only


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def pmdinfo_params(so: str):
    info = json.loads(run("dpdk-pmdinfo.py", so))
    assert [d["name"] for d in info] == ["net_vhost"], info
    return [p.split("=")[0] for p in info[0]["params"].split()]


def test_pmdinfo_lists_name_and_every_devarg(pmd):
    """net_vhost's devargs, in its order (22.11's, read off the distribution's
    plugin), then ours."""
    distro = sorted(glob.glob("/usr/lib/*/dpdk/pmds-*/librte_net_vhost.so"))
    assert distro, "the distribution's net_vhost plugin is not installed"
    theirs = pmdinfo_params(distro[0])
    params = pmdinfo_params(str(pmd.so_path))
    assert params[:len(theirs)] == theirs, (params, theirs)
    assert params[len(theirs):] == ["legacy-ol-flags", "dequeue-zero-copy",
                                    "zero-copy-threshold"], params


def test_does_not_link_librte_vhost(pmd):
    needed = re.findall(r"\(NEEDED\).*\[(.*)\]", run("readelf", "-d", str(pmd.so_path)))
    assert needed, "readelf found no NEEDED entries"
    assert not [n for n in needed if "rte_vhost" in n], needed
    assert any("rte_ethdev" in n for n in needed), needed


def test_exports_no_rte_vhost_symbols(pmd):
    exported = run("nm", "-D", "--defined-only", str(pmd.so_path)).split("\n")
    names = [line.split()[-1] for line in exported if line.strip()]
    assert not [n for n in names if n.startswith("rte_vhost")], names
    # Internal symbols stay hidden: nothing of lib/vhost (vhu_*) is visible.
    assert not [n for n in names if n.startswith("vhu_")], names
