//! Defaults the engine relies on, and the JSON shape of the stats.

use std::time::Duration;

use moss_discovery::tracker_url::{TrackerKind, TrackerUrl};
use moss_discovery::{default_trackers, Discovery, DiscoveryConfig, DiscoveryEvent, LanConfig};

#[test]
fn built_in_trackers_are_the_original_list_and_all_parse() {
    let list = default_trackers();
    assert_eq!(list.len(), 10);
    assert_eq!(list[0], "udp://tracker.opentrackr.org:1337/announce");
    assert!(list.contains(&"http://tracker.opentrackr.org:1337/announce".to_string()));
    for host in [
        "open.stealth.si:80",
        "tracker.openbittorrent.com:6969",
        "exodus.desync.com:6969",
        "tracker.torrent.eu.org:451",
        "explodie.org:6969",
        "open.demonii.com:1337",
    ] {
        assert!(list.contains(&format!("udp://{host}/announce")), "{host}");
    }
    let kinds: Vec<TrackerKind> = list
        .iter()
        .map(|u| TrackerUrl::parse(u).expect(u).kind)
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == TrackerKind::Udp).count(), 8);
}

#[test]
fn config_defaults_follow_the_reference() {
    let c = DiscoveryConfig::new([1; 20], 7000);
    assert_eq!(c.announce_interval, Duration::from_secs(120));
    assert_eq!(c.trackers, default_trackers());
    assert_eq!(c.udp_retransmit_base, Duration::from_secs(15));
    assert!(c.dht.is_none() && c.lan.is_none());
    let lan = LanConfig::new([0; 32]);
    assert_eq!(lan.group, std::net::Ipv4Addr::new(239, 255, 77, 77));
    assert_eq!(lan.port, 44445);
    assert_eq!(lan.interval, Duration::from_millis(1500));
}

#[test]
fn event_ids_are_5_and_6() {
    let ok = DiscoveryEvent::TrackerAnnounce {
        tracker: "t".into(),
        peers: 3,
    };
    let bad = DiscoveryEvent::TrackerFailure {
        tracker: "t".into(),
        error: "e".into(),
    };
    assert_eq!((ok.event_id(), bad.event_id()), (5, 6));
    assert_eq!(
        serde_json::to_value(&bad).expect("json"),
        serde_json::json!({"type": "tracker_failure", "tracker": "t", "error": "e"})
    );
}

#[test]
fn unsupported_urls_are_reported_without_network() {
    let mut c = DiscoveryConfig::new([2; 20], 7001);
    c.trackers = vec![
        "https://127.0.0.1:1/announce".into(),
        "wss://x:1".into(),
        "garbage".into(),
    ];
    let mut d = Discovery::start(c).expect("start");
    let s = d.stats();
    assert_eq!(s.drops.unsupported_trackers, 3);
    assert!(s
        .trackers
        .iter()
        .all(|t| !t.supported && t.failures == 1 && t.last_error.is_some()));
    let events: Vec<_> = d.events().try_iter().collect();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.event_id() == 6));
    let json = serde_json::to_value(&s).expect("json");
    for key in [
        "listen_port",
        "trackers",
        "dht",
        "lan",
        "candidates_emitted",
        "drops",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert_eq!(json["trackers"][0]["supported"], false);
    assert_eq!(d.stop().detached, 0);
}

#[test]
fn the_handle_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Discovery>();
    assert_send_sync::<moss_discovery::Candidate>();
    assert_send_sync::<moss_discovery::DiscoveryStats>();
}
