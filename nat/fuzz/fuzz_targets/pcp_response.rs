//! PCP response decoding is total and round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use moss_nat::pcp::Response;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Response::decode(data) {
        assert_eq!(Response::decode(&r.encode()), Ok(r));
    }
});
