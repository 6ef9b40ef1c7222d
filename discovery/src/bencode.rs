//! A total, depth- and size-limited bencode decoder (BEP 3).
//!
//! Every input gives a [`Value`] or a [`BencodeError`]: no panics, no
//! recursion deeper than [`Limits::max_depth`], no allocation larger than the
//! input (a byte string's declared length is checked against the remaining
//! input before anything is allocated), and at most [`Limits::max_items`]
//! values in total.

use std::collections::BTreeMap;

/// A decoded bencode value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `i<digits>e`
    Int(i64),
    /// `<len>:<bytes>`
    Bytes(Vec<u8>),
    /// `l<values>e`
    List(Vec<Value>),
    /// `d<key><value>…e` (keys are byte strings)
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    /// The value under `key` if `self` is a dictionary.
    pub fn get(&self, key: &[u8]) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key),
            _ => None,
        }
    }

    /// The byte string, if `self` is one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The integer, if `self` is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// Resource limits for [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum input length in bytes.
    pub max_input: usize,
    /// Maximum nesting depth of lists and dictionaries.
    pub max_depth: usize,
    /// Maximum number of values (of any kind) in the whole document.
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input: 256 * 1024,
            max_depth: 32,
            max_items: 16 * 1024,
        }
    }
}

/// Why a byte string is not acceptable bencode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BencodeError {
    /// The input is longer than [`Limits::max_input`].
    #[error("input too large")]
    InputTooLarge,
    /// The input ended inside a value.
    #[error("unexpected end of input")]
    UnexpectedEnd,
    /// A byte that cannot start a value.
    #[error("unexpected byte 0x{0:02x}")]
    UnexpectedByte(u8),
    /// Malformed integer (`i-0e`, leading zeros, empty, overflow, non-digits).
    #[error("invalid integer")]
    InvalidInteger,
    /// Malformed byte-string length prefix.
    #[error("invalid string length")]
    InvalidLength,
    /// A byte string declares more bytes than the input holds.
    #[error("string longer than the remaining input")]
    StringTooLong,
    /// A dictionary key that is not a byte string.
    #[error("dictionary key is not a string")]
    NonStringKey,
    /// Nesting deeper than [`Limits::max_depth`].
    #[error("nesting too deep")]
    TooDeep,
    /// More values than [`Limits::max_items`].
    #[error("too many items")]
    TooManyItems,
    /// Bytes after the top-level value.
    #[error("trailing data after the value")]
    TrailingData,
}

/// Decodes exactly one bencode value spanning the whole input.
pub fn decode(input: &[u8], limits: Limits) -> Result<Value, BencodeError> {
    if input.len() > limits.max_input {
        return Err(BencodeError::InputTooLarge);
    }
    let mut p = Parser {
        input,
        pos: 0,
        items: 0,
        limits,
    };
    let v = p.value(0)?;
    if p.pos != input.len() {
        return Err(BencodeError::TrailingData);
    }
    Ok(v)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    items: usize,
    limits: Limits,
}

impl Parser<'_> {
    fn peek(&self) -> Result<u8, BencodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(BencodeError::UnexpectedEnd)
    }

    fn count_item(&mut self) -> Result<(), BencodeError> {
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(BencodeError::TooManyItems);
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value, BencodeError> {
        self.count_item()?;
        match self.peek()? {
            b'i' => self.integer().map(Value::Int),
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => {
                if depth >= self.limits.max_depth {
                    return Err(BencodeError::TooDeep);
                }
                self.pos += 1;
                let mut list = Vec::new();
                while self.peek()? != b'e' {
                    list.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(list))
            }
            b'd' => {
                if depth >= self.limits.max_depth {
                    return Err(BencodeError::TooDeep);
                }
                self.pos += 1;
                let mut dict = BTreeMap::new();
                loop {
                    let b = self.peek()?;
                    if b == b'e' {
                        break;
                    }
                    if !b.is_ascii_digit() {
                        return Err(BencodeError::NonStringKey);
                    }
                    self.count_item()?;
                    let key = self.bytes()?;
                    let value = self.value(depth + 1)?;
                    dict.insert(key, value);
                }
                self.pos += 1;
                Ok(Value::Dict(dict))
            }
            other => Err(BencodeError::UnexpectedByte(other)),
        }
    }

    fn integer(&mut self) -> Result<i64, BencodeError> {
        self.pos += 1; // 'i'
        let rest = &self.input[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'e')
            .ok_or(BencodeError::UnexpectedEnd)?;
        let digits = &rest[..end];
        let (negative, magnitude) = match digits.split_first() {
            Some((b'-', m)) => (true, m),
            _ => (false, digits),
        };
        let leading_zero = magnitude.len() > 1 && magnitude.first() == Some(&b'0');
        let negative_zero = negative && magnitude == b"0";
        if magnitude.is_empty()
            || !magnitude.iter().all(u8::is_ascii_digit)
            || leading_zero
            || negative_zero
        {
            return Err(BencodeError::InvalidInteger);
        }
        let mut value: i64 = 0;
        for &d in magnitude {
            let digit = i64::from(d - b'0');
            value = value
                .checked_mul(10)
                .and_then(|v| {
                    if negative {
                        v.checked_sub(digit)
                    } else {
                        v.checked_add(digit)
                    }
                })
                .ok_or(BencodeError::InvalidInteger)?;
        }
        self.pos += end + 1;
        Ok(value)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, BencodeError> {
        let rest = &self.input[self.pos..];
        let colon = rest
            .iter()
            .position(|&b| b == b':')
            .ok_or(BencodeError::UnexpectedEnd)?;
        let digits = &rest[..colon];
        if digits.is_empty()
            || digits.len() > 19
            || !digits.iter().all(u8::is_ascii_digit)
            || (digits.len() > 1 && digits[0] == b'0')
        {
            return Err(BencodeError::InvalidLength);
        }
        let mut len: usize = 0;
        for &d in digits {
            len = len
                .checked_mul(10)
                .and_then(|v| v.checked_add(usize::from(d - b'0')))
                .ok_or(BencodeError::InvalidLength)?;
        }
        let start = colon + 1;
        if len > rest.len() - start {
            return Err(BencodeError::StringTooLong);
        }
        let out = rest[start..start + len].to_vec();
        self.pos += start + len;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(input: &[u8]) -> Result<Value, BencodeError> {
        decode(input, Limits::default())
    }

    #[test]
    fn decodes_values() {
        assert_eq!(d(b"i42e"), Ok(Value::Int(42)));
        assert_eq!(d(b"i-7e"), Ok(Value::Int(-7)));
        assert_eq!(d(b"i0e"), Ok(Value::Int(0)));
        assert_eq!(d(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
        assert_eq!(d(b"4:spam"), Ok(Value::Bytes(b"spam".to_vec())));
        assert_eq!(d(b"0:"), Ok(Value::Bytes(vec![])));
        assert_eq!(
            d(b"l4:spami3ee"),
            Ok(Value::List(vec![
                Value::Bytes(b"spam".to_vec()),
                Value::Int(3)
            ]))
        );
        let v = d(b"d8:intervali60e5:peers6:\x7f\x00\x00\x01\x1a\xe1e").unwrap();
        assert_eq!(v.get(b"interval").and_then(Value::as_int), Some(60));
        assert_eq!(
            v.get(b"peers").and_then(Value::as_bytes),
            Some(&b"\x7f\x00\x00\x01\x1a\xe1"[..])
        );
    }

    #[test]
    fn rejects_malformed() {
        use BencodeError::*;
        assert_eq!(d(b""), Err(UnexpectedEnd));
        assert_eq!(d(b"i-0e"), Err(InvalidInteger));
        assert_eq!(d(b"i03e"), Err(InvalidInteger));
        assert_eq!(d(b"ie"), Err(InvalidInteger));
        assert_eq!(d(b"i9223372036854775808e"), Err(InvalidInteger));
        assert_eq!(d(b"i12"), Err(UnexpectedEnd));
        assert_eq!(d(b"5:abc"), Err(StringTooLong));
        assert_eq!(d(b"99999999999999999999:x"), Err(InvalidLength));
        assert_eq!(d(b"18446744073709551615:x"), Err(InvalidLength));
        assert_eq!(d(b"9999999999:x"), Err(StringTooLong));
        assert_eq!(d(b"01:a"), Err(InvalidLength));
        assert_eq!(d(b"di1ei2ee"), Err(NonStringKey));
        assert_eq!(d(b"l"), Err(UnexpectedEnd));
        assert_eq!(d(b"x"), Err(UnexpectedByte(b'x')));
        assert_eq!(d(b"i1ei2e"), Err(TrailingData));
    }

    #[test]
    fn enforces_limits() {
        let deep = [b"l".repeat(40), b"e".repeat(40)].concat();
        assert_eq!(d(&deep), Err(BencodeError::TooDeep));
        let ok_depth = [b"l".repeat(32), b"e".repeat(32)].concat();
        assert!(d(&ok_depth).is_ok());
        let many = [b"l".to_vec(), b"i1e".repeat(100), b"e".to_vec()].concat();
        let small = Limits {
            max_items: 50,
            ..Limits::default()
        };
        assert_eq!(decode(&many, small), Err(BencodeError::TooManyItems));
        let tiny = Limits {
            max_input: 3,
            ..Limits::default()
        };
        assert_eq!(decode(b"i42e", tiny), Err(BencodeError::InputTooLarge));
    }
}
