//! Announcement decoding is total, believes only the gateway, and round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use moss_nat::announce::{AnnounceError, Announcement};
use std::net::{Ipv4Addr, SocketAddr};

fuzz_target!(|data: &[u8]| {
    let gw = Ipv4Addr::new(192, 168, 1, 1);
    let other = SocketAddr::from(([192, 168, 1, 2], 5351));
    assert!(matches!(
        Announcement::accept(other, gw, data),
        Err(AnnounceError::NotFromGateway(_))
    ));
    if let Ok(a) = Announcement::accept(SocketAddr::from((gw, 5351)), gw, data) {
        assert_eq!(Announcement::decode(&a.encode()), Ok(a));
    }
});
