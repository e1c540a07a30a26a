"""QEMU test rig: guests with a vhost-user virtio-net NIC (see vm.py)."""
