//! moss: the command-line Moss node. Publish and subscribe from a terminal
//! or a script, list peers, show mesh info, keep an identity.

mod error;
mod identity;
mod inspect;
mod interrupt;
mod node_opts;
mod publish;
mod sub;

use clap::{Parser, Subcommand};
use error::CliError;
use node_opts::{with_story, NodeOpts};
use std::process::ExitCode;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples (a chat between two terminals on one machine, offline):
  moss sub chat --mesh demo --listen-port 41001 --no-trackers --no-dht --no-lan
  moss pub chat hello --mesh demo --static 127.0.0.1:41001 --no-trackers --no-dht --no-lan

  tail -f app.log | moss pub logs --mesh ops --psk-file ops.psk   # one message per line
  moss sub logs --mesh ops --psk-file ops.psk --json              # JSON lines with sender and id
  moss id                                                         # create or show your identity
  moss peers --mesh global                                        # who is out there

Exit codes:
  0  success
  1  the node failed (could not start, I/O error)
  2  bad command line, config, PSK or identity file
  3  no peer (for pub: no peer subscribed to the topic) within --wait
  4  sub --timeout ran out before --count messages arrived

RUST_LOG sets the log level on stderr (default info; -q means warn).";

/// moss: a zero-infrastructure peer-to-peer mesh node for terminals and scripts.
#[derive(Debug, Parser)]
#[command(name = "moss", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    node: NodeOpts,
    /// Log warnings and errors only (unless RUST_LOG is set).
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a topic's messages as they arrive (payload per line, or --json).
    Sub {
        /// The topic.
        topic: String,
        /// One JSON object per line: topic, from, id, text, data_hex.
        #[arg(long)]
        json: bool,
        /// Exit after this many messages.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Give up after this many seconds (exit code 4 if --count is not reached).
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
    },
    /// Send MESSAGE, or one message per stdin line, once a subscriber is connected.
    Pub {
        /// The topic.
        topic: String,
        /// The message (default: read lines from stdin).
        message: Option<String>,
        /// Seconds to wait for a peer subscribed to the topic (exit code 3 if none).
        #[arg(long, value_name = "SECS", default_value_t = 10.0)]
        wait: f64,
    },
    /// List connected peers.
    Peers {
        /// Seconds to wait for a first peer (exit code 3 if none).
        #[arg(long, value_name = "SECS", default_value_t = 5.0)]
        wait: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show mesh info: peer id, NAT type, backend, addresses, discovery.
    Info {
        /// Seconds to wait for a first peer before reporting.
        #[arg(long, value_name = "SECS", default_value_t = 2.0)]
        wait: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create (if missing) and show the persistent identity in --identity
    /// (default $MOSS_IDENTITY, else ~/.config/moss/identity.key).
    Id,
}

fn secs(v: f64, flag: &str) -> Result<Duration, CliError> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| CliError::Usage(format!("--{flag} {v}: want a number of seconds >= 0")))
}

fn run(cli: Cli) -> Result<(), CliError> {
    let n = &cli.node;
    match cli.command {
        Command::Id => {
            let path = n
                .identity
                .clone()
                .or_else(identity::default_path)
                .ok_or_else(|| {
                    CliError::Usage(
                        "no identity path: pass --identity FILE or set MOSS_IDENTITY".into(),
                    )
                })?;
            let (id, created) = identity::load_or_create(&path)?;
            eprintln!(
                "{} {}",
                if created { "created" } else { "identity in" },
                path.display()
            );
            println!("{}", id.public_key().to_hex());
            Ok(())
        }
        Command::Sub {
            topic,
            json,
            count,
            timeout,
        } => {
            let timeout = timeout.map(|t| secs(t, "timeout")).transpose()?;
            let node = n.start()?;
            with_story(&node, || sub::run(&node, &topic, json, count, timeout))
        }
        Command::Pub {
            topic,
            message,
            wait,
        } => {
            let wait = secs(wait, "wait")?;
            let node = n.start()?;
            with_story(&node, || {
                publish::run(&node, &topic, message.as_deref(), wait)
            })
            .map(|_| ())
        }
        Command::Peers { wait, json } => {
            let wait = secs(wait, "wait")?;
            let node = n.start()?;
            with_story(&node, || inspect::peers(&node, wait, json))
        }
        Command::Info { wait, json } => {
            let wait = secs(wait, "wait")?;
            let node = n.start()?;
            with_story(&node, || inspect::info(&node, wait, json))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = if cli.quiet { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(()) => ExitCode::from(error::EXIT_OK),
        Err(e) => {
            eprintln!("moss: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_examples_parse() {
        Cli::command_for_test().debug_assert();
        for line in EXAMPLES
            .lines()
            .filter(|l| l.trim_start().starts_with("moss "))
        {
            let cmd = line.split('#').next().unwrap_or("").trim();
            let args = cmd.split_whitespace();
            assert!(Cli::try_parse_from(args).is_ok(), "{cmd}");
        }
    }

    #[test]
    fn the_readme_chat_parses_with_offline_flags() {
        let c = Cli::try_parse_from(
            "moss pub chat hello --mesh demo --static 127.0.0.1:41001 --no-trackers --no-dht --no-lan"
                .split_whitespace(),
        )
        .unwrap();
        let cfg = c.node.config().unwrap();
        assert!(!cfg.dht_enabled && !cfg.lan_discovery_enabled);
        assert!(
            matches!(c.command, Command::Pub { ref message, .. } if message.as_deref() == Some("hello"))
        );
    }

    impl Cli {
        fn command_for_test() -> clap::Command {
            <Cli as clap::CommandFactory>::command()
        }
    }
}
