//! moss-gateway: a Moss node serving a read-only HTTP API (stats, events, messages, metrics).

mod api;
mod eventlog;
mod explorer;
mod inbox;
mod meshes;
mod metrics;
mod options;
mod story;

use moss_service::{flags, serve};
use options::Options;
use std::process::ExitCode;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    moss_service::logging::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match Options::from_args(&args) {
        Ok(o) => o,
        Err(options::OptionsError::Flag(flags::FlagError::Help)) => {
            eprint!("{}", flags::usage("moss-gateway", options::SPECS));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("moss-gateway: {e}");
            eprint!("{}", flags::usage("moss-gateway", options::SPECS));
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moss-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: Options) -> Result<(), String> {
    let meshes = meshes::Meshes::start(
        &opts.mesh,
        opts.config.clone(),
        opts.psk,
        opts.subscribe.clone(),
        meshes::Policy {
            max: opts.max_meshes,
            public: opts.public_meshes.clone(),
            separate_engines: !opts.shared_engine,
        },
    )
    .map_err(|e| e.to_string())?;
    let meshes = Arc::new(meshes);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(opts.http)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", opts.http))?;
        let http = listener.local_addr().map_err(|e| e.to_string())?;
        if let Ok(primary) = meshes.get(None) {
            tracing::info!(
                mesh = %opts.mesh,
                listen = %primary.node.local_addr(),
                backend = primary.node.backend(),
                public_key = %primary.node.public_key(),
                "moss-gateway: joined mesh, API on http://{http}"
            );
        }
        serve::serve(
            listener,
            api::router(meshes.clone()),
            opts.http_limits,
            serve::shutdown_signal(),
        )
        .await;
        Ok::<(), String>(())
    });
    meshes.clear();
    result
}
