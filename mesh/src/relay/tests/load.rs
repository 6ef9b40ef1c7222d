//! Supernodes report their load (sessions in use over
//! `relay_max_sessions`, signed, to peers that take the report): of two
//! supernodes an end measures as near, it asks the less loaded one.

use super::*;

#[test]
fn ends_ask_the_less_loaded_of_two_near_supernodes() {
    let mut c = cfg();
    c.nat.relay_max_sessions = 4;
    let mut net = Net::new(14, c);
    // Ends 2 to 7 (three pairs) are near supernode 0 and far from 1; ends
    // 8 to 13 are as near to both.
    let (near, far) = (Duration::from_millis(2), Duration::from_millis(40));
    for i in 2..8 {
        net.set_latency(i, 0, near);
        net.set_latency(i, 1, far);
    }
    let mut net = star_on(net, &[0, 1]);
    for (a, b) in [(2, 3), (4, 5), (6, 7)] {
        relay_pair(&mut net, a, b);
    }
    assert_eq!(net.nodes[0].relay_info().served_sessions, 3);
    // Supernode 0's report (3 of 4) reaches every end.
    net.run(Duration::from_secs(3));
    for (a, b) in [(8, 9), (10, 11), (12, 13)] {
        relay_pair(&mut net, a, b);
        let via = match net.path_to(a, b) {
            Some(Path::Relay { via, .. }) => Some(via),
            _ => None,
        };
        assert_eq!(via, Some(net.id(1)), "pair {a}-{b} asked the less loaded");
    }
    assert_eq!(net.nodes[0].relay_info().served_sessions, 3);
    assert_eq!(net.nodes[1].relay_info().served_sessions, 3);
    for i in 8..14 {
        assert_eq!(net.nodes[i].relay_info().last_refusal, None);
    }
}
