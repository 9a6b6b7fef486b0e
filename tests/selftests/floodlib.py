"""Pieces shared by the flood helpers of the selftests (native-flood.py, xdp-flood.py):
Ethernet/IPv4/UDP frame parsing, an AF_PACKET socket, and the capture file format
(each record: u16 big-endian length, then that many bytes)."""
import socket
import struct

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800


def udp_payload_off(f, dport):
    """Offset of the UDP payload if f is an IPv4/UDP frame to dport, else None."""
    if len(f) < 42 or struct.unpack_from("!H", f, 12)[0] != ETH_P_IP:
        return None
    ihl = (f[14] & 15) * 4
    if f[23] != 17 or len(f) < 14 + ihl + 8:
        return None
    if struct.unpack_from("!H", f, 14 + ihl + 2)[0] != dport:
        return None
    return 14 + ihl + 8


def udp_payload(f, dport):
    """The UDP payload (as long as the UDP header says) of a frame to dport, else None."""
    off = udp_payload_off(f, dport)
    if off is None:
        return None
    ulen = struct.unpack_from("!H", f, off - 4)[0]
    return f[off : off - 8 + ulen]


def packet_socket(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    return s


def save(path, records):
    with open(path, "wb") as fp:
        for r in records:
            fp.write(struct.pack("!H", len(r)) + r)


def load(path):
    data, out, i = open(path, "rb").read(), [], 0
    while i + 2 <= len(data):
        (n,) = struct.unpack_from("!H", data, i)
        out.append(data[i + 2 : i + 2 + n])
        i += 2 + n
    return out
