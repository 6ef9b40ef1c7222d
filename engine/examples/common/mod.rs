//! The chat examples' shared start: arguments, an offline node.

/// A started chat node and the peer it should dial, if any.
pub type Started = Option<(moss::Node, Option<String>)>;

/// Parses `MESH LISTEN_PORT [PEER_HOST:PORT]` and starts an offline node
/// (no trackers, DHT or LAN beacons); `None` after printing the usage
/// (`--help`, or too few arguments). Returns the node and the peer to dial.
pub fn start(program: &str) -> Result<Started, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: {program} MESH LISTEN_PORT [PEER_HOST:PORT]   (LISTEN_PORT 0 = any)");
        return Ok(None);
    }
    let config = format!(
        r#"{{"trackers": [], "dht_enabled": false, "lan_discovery_enabled": false, "listen_port": {}}}"#,
        args[1].parse::<u16>()?
    );
    let node = moss::Node::builder(&args[0])
        .config_json(&config)?
        .start()?;
    let me = moss::short_id(&node.public_key());
    println!("listening on {}, peer id {me}", node.local_addr());
    Ok(Some((node, args.get(2).cloned())))
}

/// Prints a chat message.
pub fn show(m: &moss::Message) {
    println!(
        "<{}> {}",
        moss::short_id(&m.from),
        String::from_utf8_lossy(m.data())
    );
}
