"""Link-layer header types pcapdns decodes (tcpdump.org/linktypes.html)."""

NULL = 0  # BSD loopback: 4-byte address family in host byte order
ETHERNET = 1
RAW_12 = 12  # DLT_RAW as some systems write it
RAW_14 = 14  # DLT_RAW on OpenBSD
LOOP = 108  # OpenBSD loopback: 4-byte address family in network byte order
RAW = 101
LINUX_SLL = 113
RAW_IPV4 = 228
RAW_IPV6 = 229
LINUX_SLL2 = 276

NAMES: dict[int, str] = {
    NULL: "NULL",
    ETHERNET: "ETHERNET",
    RAW_12: "RAW",
    RAW_14: "RAW",
    RAW: "RAW",
    LOOP: "LOOP",
    LINUX_SLL: "LINUX_SLL",
    RAW_IPV4: "IPV4",
    RAW_IPV6: "IPV6",
    LINUX_SLL2: "LINUX_SLL2",
}

SUPPORTED = frozenset(NAMES)

# A few names for the error message when a capture has a link type we do not decode.
_OTHER_NAMES: dict[int, str] = {
    105: "IEEE802_11",
    127: "IEEE802_11_RADIOTAP",
    239: "NFLOG",
    147: "USER0",
    187: "BLUETOOTH_HCI_H4",
    220: "USB_LINUX_MMAPPED",
    9: "PPP",
    50: "PPP_HDLC",
    204: "PPP_PPPD",
}


def name(link_type: int) -> str:
    """The LINKTYPE_ name for ``link_type``, or its number when unknown."""
    return NAMES.get(link_type) or _OTHER_NAMES.get(link_type) or f"{link_type}"


def unsupported(link_type: int) -> str:
    """The problem with a capture of ``link_type``, naming it and what pcapdns reads
    instead: ``unsupported link type IEEE802_11 (105); supported: NULL (0), ...``."""
    numbers: dict[str, list[int]] = {}
    for number in sorted(NAMES):
        numbers.setdefault(NAMES[number], []).append(number)
    supported = ", ".join(f"{n} ({', '.join(map(str, nums))})" for n, nums in numbers.items())
    label = name(link_type)
    shown = f"{label} ({link_type})" if label != str(link_type) else f"{link_type}"
    return f"unsupported link type {shown}; supported: {supported}"
