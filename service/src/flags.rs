//! Command-line flags in Go's `flag` style, as the original gateway takes
//! them: `-name value`, `-name=value`, `--name value`, and bare `-bool` or
//! `-bool=false` for booleans. Errors name the flag.

use std::collections::HashMap;

/// Why the command line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// A flag we do not know.
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    /// A value flag at the end of the line.
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// A value that does not parse.
    #[error("invalid value {value:?} for flag -{flag}: {reason}")]
    BadValue {
        /// The flag.
        flag: String,
        /// What was given.
        value: String,
        /// Why it is wrong.
        reason: String,
    },
    /// A positional argument (the gateway takes none).
    #[error("unexpected argument {0:?}")]
    Positional(String),
    /// `-h` / `-help`.
    #[error("help requested")]
    Help,
}

/// Kind of a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Takes a value.
    Value,
    /// Boolean; a bare flag means true.
    Bool,
    /// Takes a value and may repeat.
    Repeated,
}

/// A flag definition: name, kind, help text.
pub struct Spec {
    /// Name without dashes.
    pub name: &'static str,
    /// Kind.
    pub kind: Kind,
    /// Help line.
    pub help: &'static str,
}

/// Parsed flags: the last value of each, or every value of repeated ones.
#[derive(Debug, Default)]
pub struct Parsed {
    values: HashMap<&'static str, Vec<String>>,
}

impl Parsed {
    /// The value of a flag, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(|s| s.as_str())
    }

    /// All values of a repeated flag.
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// A boolean flag (default when absent).
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, FlagError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| FlagError::BadValue {
                flag: name.into(),
                value: v.into(),
                reason: "not a boolean".into(),
            }),
        }
    }

    /// A parsed flag value (default when absent).
    pub fn parse<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, FlagError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| FlagError::BadValue {
                flag: name.into(),
                value: v.into(),
                reason: e.to_string(),
            }),
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `args` (without the program name) against `specs`.
pub fn parse(specs: &[Spec], args: &[String]) -> Result<Parsed, FlagError> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(FlagError::Positional(arg.clone()));
        };
        if body.is_empty() {
            return Err(FlagError::Positional(arg.clone()));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if name == "h" || name == "help" {
            return Err(FlagError::Help);
        }
        let spec = specs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| FlagError::Unknown(name.into()))?;
        let value = match (spec.kind, inline) {
            (_, Some(v)) => v,
            (Kind::Bool, None) => "true".into(),
            (_, None) => {
                let v = args
                    .get(i)
                    .ok_or_else(|| FlagError::MissingValue(name.into()))?;
                i += 1;
                v.clone()
            }
        };
        if spec.kind == Kind::Bool && parse_bool(&value).is_none() {
            return Err(FlagError::BadValue {
                flag: name.into(),
                value,
                reason: "not a boolean".into(),
            });
        }
        let slot = out.values.entry(spec.name).or_default();
        if spec.kind != Kind::Repeated {
            slot.clear();
        }
        slot.push(value);
    }
    Ok(out)
}

/// Usage text listing every flag.
pub fn usage(program: &str, specs: &[Spec]) -> String {
    let mut s = format!("Usage of {program}:\n");
    for spec in specs {
        let arg = match spec.kind {
            Kind::Bool => "",
            _ => " value",
        };
        s.push_str(&format!("  -{}{}\n    \t{}\n", spec.name, arg, spec.help));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[Spec] = &[
        Spec {
            name: "mesh",
            kind: Kind::Value,
            help: "",
        },
        Spec {
            name: "trackers",
            kind: Kind::Bool,
            help: "",
        },
        Spec {
            name: "subscribe",
            kind: Kind::Repeated,
            help: "",
        },
    ];

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn go_and_gnu_forms() {
        let p = parse(
            SPECS,
            &args("-mesh local -trackers=false --subscribe a -subscribe=b"),
        )
        .unwrap();
        assert_eq!(p.get("mesh"), Some("local"));
        assert!(!p.bool("trackers", true).unwrap());
        assert_eq!(p.all("subscribe"), ["a", "b"]);
        let p = parse(SPECS, &args("--mesh=x -trackers")).unwrap();
        assert_eq!(p.get("mesh"), Some("x"));
        assert!(p.bool("trackers", false).unwrap());
    }

    #[test]
    fn errors_name_the_flag() {
        assert_eq!(
            parse(SPECS, &args("-nope 1")).unwrap_err(),
            FlagError::Unknown("nope".into())
        );
        assert_eq!(
            parse(SPECS, &args("-mesh")).unwrap_err(),
            FlagError::MissingValue("mesh".into())
        );
        assert!(matches!(
            parse(SPECS, &args("-trackers=maybe")).unwrap_err(),
            FlagError::BadValue { .. }
        ));
        assert_eq!(
            parse(SPECS, &args("stray")).unwrap_err(),
            FlagError::Positional("stray".into())
        );
        assert_eq!(parse(SPECS, &args("-help")).unwrap_err(), FlagError::Help);
        let p = parse(SPECS, &args("-mesh 5")).unwrap();
        assert!(p.parse::<u16>("mesh", 0).is_ok());
        let p = parse(SPECS, &args("-mesh x")).unwrap();
        let e = p.parse::<u16>("mesh", 0).unwrap_err();
        assert!(e.to_string().contains("-mesh"));
    }
}
