//! The engine's view of a node config: `moss_mesh::Config` plus the fields
//! only the engine can judge (`engine.backend`). Hosts that take a config
//! document (the C ABI, the gateway) parse and check it here, so every
//! entry point refuses the same documents with the same field names.

use crate::backend::BackendKind;
use moss_mesh::{Config, ConfigError};

/// Parses a JSON config document and checks it as [`validate`] does.
pub fn parse(json: &str) -> Result<Config, ConfigError> {
    let config = Config::from_json(json)?;
    BackendKind::from_config(&config.engine)?;
    Ok(config)
}

/// Checks a config: the node's rules (`Config::validate`) and a known
/// `engine.backend`; the error names the first bad field.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    config.validate()?;
    BackendKind::from_config(&config.engine).map(|_| ())
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_backend_names_the_field() {
        let e = super::parse(r#"{"engine":{"backend":"dpdk"}}"#).unwrap_err();
        assert_eq!(e.field(), "engine.backend");
        let mut c = super::parse("{}").unwrap();
        c.engine.backend = "teleport".into();
        assert_eq!(super::validate(&c).unwrap_err().field(), "engine.backend");
    }
}
