"""The addresses phones on the venue network can use to reach this server.

``server.host: 0.0.0.0`` listens on every interface, but ``0.0.0.0`` is no address a phone can
type, and ``127.0.0.1`` is the laptop talking to itself. What an organizer needs, at start-up and
in the console, is the list of addresses the judges' phones can open: ``server.public_url`` when
it is set (the address the venue uses, maybe a name), then this machine's IPv4 address on each
network interface other than loopback.

This module knows nothing of Tornado. The interface addresses are read from the kernel
(``SIOCGIFCONF`` on Linux: every IPv4 address of every interface that is up, aliases included,
in microseconds, no process started); elsewhere, the addresses the host name resolves to and the
one a packet to the outside would leave from (a UDP socket connected, nothing sent). IPv6 is
left out: a venue's phones reach a laptop by IPv4, and a link-local IPv6 address needs a zone
no phone user can type.
"""

import contextlib
import ipaddress
import socket
import struct
import sys

# ioctl(2) SIOCGIFCONF: the IPv4 addresses of the interfaces that are up (Linux).
SIOCGIFCONF = 0x8912
IFNAMSIZ = 16
# sizeof(struct ifreq): the name, then a union whose largest member is struct ifmap.
IFREQ_SIZE = IFNAMSIZ + (24 if struct.calcsize("P") == 8 else 16)
MAX_INTERFACES = 256

WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def _usable(address):
    """Whether a phone could reach ``address`` (text): an IPv4 address, not loopback, not
    unspecified, not link-local."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.version == 4 and not (ip.is_loopback or ip.is_unspecified or ip.is_link_local)


def _linux_addresses():
    import array
    import fcntl
    buffer = array.array("B", bytes(IFREQ_SIZE * MAX_INTERFACES))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("iL", len(buffer), buffer.buffer_info()[0])
        size = struct.unpack("iL", fcntl.ioctl(sock.fileno(), SIOCGIFCONF, request))[0]
    data = buffer.tobytes()[:size]
    found = []
    for start in range(0, size, IFREQ_SIZE):
        # struct sockaddr_in after the name: family (2 bytes), port (2), then the address.
        found.append(socket.inet_ntoa(data[start + IFNAMSIZ + 4:start + IFNAMSIZ + 8]))
    return found


def _other_addresses():
    found = []
    with contextlib.suppress(OSError):
        found += [info[4][0] for info in socket.getaddrinfo(
            socket.gethostname(), None, socket.AF_INET, socket.SOCK_STREAM)]
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.1", 9))  # TEST-NET-1: routes like the outside, nothing is sent
        found.append(sock.getsockname()[0])
    return found


def interface_addresses():
    """This machine's IPv4 addresses other than loopback, in the kernel's order, each once."""
    found = []
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            found = _linux_addresses()
    if not any(_usable(address) for address in found):
        found += _other_addresses()
    return list(dict.fromkeys(address for address in found if _usable(address)))


def _url(scheme, host, port):
    if ":" in host:
        host = "[%s]" % host
    return "%s://%s:%d" % (scheme, host, port)


def phone_urls(server):
    """The addresses phones can use to reach a server configured by ``server`` (the config's
    ``server`` section): ``public_url`` first when set, then one per interface address when it
    listens on every interface, or the one address it listens on when that is not loopback.
    Empty when only this machine can reach it."""
    scheme = "https" if server.get("tls_cert") else "http"
    port = server["port"]
    host = server["host"] or ""
    urls = [server["public_url"]] if server.get("public_url") else []
    if host in WILDCARD_HOSTS:
        urls += [_url(scheme, address, port) for address in interface_addresses()]
    else:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            urls.append(_url(scheme, host, port))
    return list(dict.fromkeys(urls))
