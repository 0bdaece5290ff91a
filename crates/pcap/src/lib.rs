//! pcapng / pcap writers.
