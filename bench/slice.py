"""Sets the EEVDF slice (sched_attr.sched_runtime, Linux 6.12+) of the given threads, keeping
SCHED_OTHER and their nice value. Used by bench/ab.sh (SLICE_B) to try a scheduling setting on a
running gateway before building it in.

    python3 bench/slice.py SLICE_US TID [TID ...]
"""
import ctypes
import os
import struct
import sys

SYS_SCHED_SETATTR = 314  # x86_64
SYS_SCHED_GETATTR = 315

libc = ctypes.CDLL(None, use_errno=True)


def getattr_(tid):
    buf = ctypes.create_string_buffer(56)
    if libc.syscall(SYS_SCHED_GETATTR, tid, buf, 56, 0) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return struct.unpack("IIQiIQQQII", buf.raw)


def main():
    slice_ns = int(sys.argv[1]) * 1000
    for tid in map(int, sys.argv[2:]):
        _size, policy, flags, nice, prio, _runtime, _dl, _period, umin, umax = getattr_(tid)
        attr = struct.pack("IIQiIQQQII", 56, policy, 0, nice, prio, slice_ns, 0, 0, 0, 0)
        buf = ctypes.create_string_buffer(attr, 56)
        if libc.syscall(SYS_SCHED_SETATTR, tid, buf, 0) != 0:
            err = ctypes.get_errno()
            sys.exit(f"sched_setattr({tid}): {os.strerror(err)}")
        print(tid, "slice_us", getattr_(tid)[5] // 1000)


main()
