//! moss-service: what the service binaries (`moss-gateway`, `moss-signal`)
//! share: Go-style command-line flags ([`flags`]), the bounded HTTP accept
//! loop ([`serve`]) and the logging set-up ([`logging`]).

pub mod flags;
pub mod logging;
pub mod serve;
