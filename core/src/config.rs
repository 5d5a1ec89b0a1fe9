//! Every window and cap the core uses; the Python side's `AnalysisConfig` fills it in
//! (pcapdns/config.py has the definitions).

use crate::types::Time;

#[derive(Clone, Debug)]
pub struct Config {
    /// UDP/TCP ports that carry DNS.
    pub ports: Vec<u16>,
    pub slow: Time,
    pub reorder_window: Time,
    pub duplicate_window: Time,
    pub retransmission_window: Time,
    pub retransmission_min_gap: Time,
    pub tc_fallback_window: Time,
    pub pair_before: Time,
    pub pair_after: Time,
    pub fanout_window: Time,
    pub max_wait: Time,
    pub answer_linger: Time,
    pub max_in_flight: usize,
    pub max_in_flight_bytes: usize,
    pub max_lingering: usize,
    pub max_dedupe_entries: usize,
    pub max_plausible_span: Time,
    pub max_tcp_buffer_bytes: usize,
    pub max_fragment_buffer_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ports: vec![53],
            slow: 1.0,
            reorder_window: 0.5,
            duplicate_window: 0.050,
            retransmission_window: 11.0,
            retransmission_min_gap: 0.100,
            tc_fallback_window: 5.0,
            pair_before: 0.005,
            pair_after: 0.500,
            fanout_window: 0.050,
            max_wait: 30.0,
            answer_linger: 1.0,
            max_in_flight: 1_000_000,
            max_in_flight_bytes: 256 * 1024 * 1024,
            max_lingering: 50_000,
            max_dedupe_entries: 100_000,
            max_plausible_span: 31.0 * 86400.0,
            max_tcp_buffer_bytes: 64 * 1024 * 1024,
            max_fragment_buffer_bytes: 32 * 1024 * 1024,
        }
    }
}

impl Config {
    pub fn is_dns_port(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }
}
