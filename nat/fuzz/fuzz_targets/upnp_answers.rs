//! UPnP IGD parsing is total: SSDP answers, descriptions, SOAP replies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use moss_nat::upnp::{parse_description, parse_search_response, parse_url, Action};

fuzz_target!(|data: &[u8]| {
    let _ = parse_search_response(data);
    let _ = Action::GetExternalIp.parse_reply(data);
    if let (Ok(s), Ok(base)) = (std::str::from_utf8(data), parse_url("http://192.168.1.1:5000/d.xml")) {
        if let Ok(c) = parse_description(s, &base) {
            // A control URL never leaves the gateway's IP.
            assert_eq!(c.url.addr.ip(), base.addr.ip());
        }
    }
});
