//! Link-layer header types pcapdns decodes (tcpdump.org/linktypes.html).

use std::borrow::Cow;

/// BSD loopback: 4-byte address family in host byte order.
pub const NULL: u32 = 0;
pub const ETHERNET: u32 = 1;
/// DLT_RAW as some systems write it.
pub const RAW_12: u32 = 12;
/// DLT_RAW on OpenBSD.
pub const RAW_14: u32 = 14;
pub const RAW: u32 = 101;
/// OpenBSD loopback: 4-byte address family in network byte order.
pub const LOOP: u32 = 108;
pub const LINUX_SLL: u32 = 113;
pub const RAW_IPV4: u32 = 228;
pub const RAW_IPV6: u32 = 229;
pub const LINUX_SLL2: u32 = 276;

/// The decoded link types and their names, by number.
const NAMES: [(u32, &str); 10] = [
    (NULL, "NULL"),
    (ETHERNET, "ETHERNET"),
    (RAW_12, "RAW"),
    (RAW_14, "RAW"),
    (RAW, "RAW"),
    (LOOP, "LOOP"),
    (LINUX_SLL, "LINUX_SLL"),
    (RAW_IPV4, "IPV4"),
    (RAW_IPV6, "IPV6"),
    (LINUX_SLL2, "LINUX_SLL2"),
];

/// A few names for the error message when a capture has a link type we do not decode.
const OTHER_NAMES: [(u32, &str); 9] = [
    (105, "IEEE802_11"),
    (127, "IEEE802_11_RADIOTAP"),
    (239, "NFLOG"),
    (147, "USER0"),
    (187, "BLUETOOTH_HCI_H4"),
    (220, "USB_LINUX_MMAPPED"),
    (9, "PPP"),
    (50, "PPP_HDLC"),
    (204, "PPP_PPPD"),
];

/// What pcapdns reads, as the error message lists it (names in the order of their lowest
/// number, each with all its numbers).
const SUPPORTED_TEXT: &str = "NULL (0), ETHERNET (1), RAW (12, 14, 101), LOOP (108), \
                              LINUX_SLL (113), IPV4 (228), IPV6 (229), LINUX_SLL2 (276)";

pub fn is_supported(link_type: u32) -> bool {
    NAMES.iter().any(|&(n, _)| n == link_type)
}

/// The LINKTYPE_ name for `link_type`, or its number when unknown.
pub fn name(link_type: u32) -> Cow<'static, str> {
    NAMES
        .iter()
        .chain(OTHER_NAMES.iter())
        .find(|&&(n, _)| n == link_type)
        .map(|&(_, s)| Cow::Borrowed(s))
        .unwrap_or_else(|| Cow::Owned(link_type.to_string()))
}

/// The problem with a capture of `link_type`, naming it and what pcapdns reads instead:
/// `unsupported link type IEEE802_11 (105); supported: NULL (0), ...`.
pub fn unsupported(link_type: u32) -> String {
    let label = name(link_type);
    let shown = if label != link_type.to_string() {
        format!("{label} ({link_type})")
    } else {
        link_type.to_string()
    };
    format!("unsupported link type {shown}; supported: {SUPPORTED_TEXT}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_type_and_lists_what_is_read() {
        assert_eq!(
            unsupported(105),
            "unsupported link type IEEE802_11 (105); supported: NULL (0), ETHERNET (1), \
             RAW (12, 14, 101), LOOP (108), LINUX_SLL (113), IPV4 (228), IPV6 (229), \
             LINUX_SLL2 (276)"
        );
        assert!(unsupported(4242).starts_with("unsupported link type 4242; supported: NULL (0), "));
        assert_eq!(name(276), "LINUX_SLL2");
        assert!(is_supported(14) && !is_supported(239));
    }
}
