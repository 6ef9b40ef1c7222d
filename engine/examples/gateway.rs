//! A gateway in 30 lines: a node of mesh MESH whose stats are served as
//! JSON over HTTP (std only). `moss-gateway` is the full one.
//!
//! ```sh
//! cargo run -p moss --example gateway -- global 127.0.0.1:8787 &
//! curl -s localhost:8787/
//! ```

use std::io::{BufRead, BufReader, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mesh = args.next().unwrap_or_else(|| "global".into());
    let http = args.next().unwrap_or_else(|| "127.0.0.1:8787".into());
    let node = moss::Node::builder(&mesh).start()?;
    let listener = std::net::TcpListener::bind(&http)?;
    println!(
        "mesh {mesh} on {}, stats on http://{http}/",
        node.local_addr()
    );
    for conn in listener.incoming() {
        let mut conn = conn?;
        // Read the request head; every path gets the stats.
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut line = String::new();
        while reader.read_line(&mut line)? > 2 {
            line.clear();
        }
        let body = serde_json::to_string(&node.stats()?)?;
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close";
        write!(
            conn,
            "{head}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
    }
    Ok(())
}
