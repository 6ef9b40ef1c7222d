//! HTTP response parser (status line, headers, chunked bodies) and the bencode decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_discovery::bencode::{decode, Limits};
use moss_discovery::http_tracker::{parse_body, parse_response};

fuzz_target!(|data: &[u8]| {
    let _ = decode(data, Limits::default());
    let _ = parse_body(data, 200);
    let _ = parse_response(data, 200);
    let mut framed = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
    framed.extend_from_slice(data);
    let _ = parse_response(&framed, 200);
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunked.extend_from_slice(data);
    let _ = parse_response(&chunked, 200);
});
