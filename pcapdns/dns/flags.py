"""Bits of the DNS header's flags word (RFC 1035 section 4.1.1), named once."""

#: The message is a response.
QR = 0x8000
#: The message was truncated to fit the transport (TC).
TC = 0x0200
#: The response code, in the low four bits.
RCODE_MASK = 0x000F
