//! moss-signal: the WebRTC signaling relay for browser Moss peers.

use moss_service::{flags, serve};
use moss_signal::options::{Options, OptionsError, SPECS};
use moss_signal::server;
use std::process::ExitCode;

fn main() -> ExitCode {
    moss_service::logging::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match Options::from_args(&args) {
        Ok(o) => o,
        Err(OptionsError::Flag(flags::FlagError::Help)) => {
            eprint!("{}", flags::usage("moss-signal", SPECS));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("moss-signal: {e}");
            eprint!("{}", flags::usage("moss-signal", SPECS));
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("moss-signal: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let listener = match tokio::net::TcpListener::bind(opts.addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("moss-signal: cannot listen on {}: {e}", opts.addr);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!("moss-signal: listening on ws://{addr}/signal");
        if let Some(d) = &opts.demo {
            tracing::info!(
                "moss-signal: serving the browser demo from {} at http://{addr}/",
                d.display()
            );
        }
        let app = server::router_with_demo(server::Signal::new(opts.limits), opts.demo);
        serve::serve(listener, app, opts.http, serve::shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}
