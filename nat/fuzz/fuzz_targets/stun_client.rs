//! Arbitrary datagrams fed to a client with transactions in flight never panic.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use moss_nat::stun::{ChangeRequest, ClientConfig, StunClient};

struct Counter(u64);
impl moss_nat::rand_core::RngCore for Counter {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.next_u64() as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), moss_nat::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut c) = StunClient::new(ClientConfig::default()) else { return };
    let t0 = Instant::now();
    let server = "203.0.113.10:3478".parse().unwrap();
    let mut rng = Counter(0);
    for _ in 0..2 {
        let _ = c.start_binding(t0, server, ChangeRequest::default(), &mut rng);
    }
    while c.poll_transmit(t0).is_some() {}
    for (i, chunk) in data.split(|&b| b == 0xff).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 100);
        let _ = c.handle_datagram(now, server, chunk);
        c.handle_timeout(now);
        while c.poll_transmit(now).is_some() {}
        while c.poll_outcome().is_some() {}
    }
});
