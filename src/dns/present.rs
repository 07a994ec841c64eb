//! Records in RFC 1035 presentation format (§5.1), as zone files and `dig` show them.
//!
//! hickory's own `Display` runs a TXT record's character-strings together and prints their
//! bytes lossily, so `"hello world" "second string"` reads `hello worldsecond string`;
//! these wrappers keep every boundary and byte: each character-string in quotes, with `"`
//! and `\` escaped and bytes outside printable ASCII as `\DDD`, hex in upper case, and
//! types hickory does not know as `TYPEnnn` with RFC 3597's `\# length hex`.

use std::fmt::{self, Display, Formatter, Write};

use hickory_proto::rr::{RData, Record, RecordType};

/// A record as one zone-file line: `owner TTL class type data`.
///
/// ```
/// use std::str::FromStr;
/// use evnet::dns::proto::rr::rdata::TXT;
/// use evnet::dns::{Name, RData, Record, ZoneLine};
///
/// let name = Name::from_str("small.example.test.").unwrap();
/// let txt = TXT::from_bytes(vec![&b"hello world"[..], &b"say \"hi\"\x07"[..]]);
/// let r = Record::from_rdata(name, 300, RData::TXT(txt));
/// assert_eq!(
///     ZoneLine(&r).to_string(),
///     r#"small.example.test. 300 IN TXT "hello world" "say \"hi\"\007""#
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ZoneLine<'a>(pub &'a Record);

/// A record's data in presentation format (the last field of a [`ZoneLine`]).
#[derive(Debug, Clone, Copy)]
pub struct RDataText<'a>(pub &'a RData);

/// A record type's mnemonic, or `TYPEnnn` for one without (RFC 3597).
#[derive(Debug, Clone, Copy)]
pub struct TypeText(pub RecordType);

impl Display for ZoneLine<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(
            f,
            "{} {} {} {} {}",
            r.name,
            r.ttl,
            r.dns_class,
            TypeText(r.record_type()),
            RDataText(&r.data)
        )
    }
}

impl Display for TypeText {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            RecordType::Unknown(code) => write!(f, "TYPE{code}"),
            t => write!(f, "{t}"),
        }
    }
}

impl Display for RDataText<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            RData::TXT(t) => {
                if t.txt_data.is_empty() {
                    return f.write_str("\"\"");
                }
                for (i, s) in t.txt_data.iter().enumerate() {
                    if i > 0 {
                        f.write_char(' ')?;
                    }
                    char_string(f, s)?;
                }
                Ok(())
            }
            RData::HINFO(h) => {
                char_string(f, &h.cpu)?;
                f.write_char(' ')?;
                char_string(f, &h.os)
            }
            RData::NAPTR(n) => {
                write!(f, "{} {} ", n.order, n.preference)?;
                for s in [&n.flags, &n.services, &n.regexp] {
                    char_string(f, s)?;
                    f.write_char(' ')?;
                }
                write!(f, "{}", n.replacement)
            }
            RData::CAA(c) => {
                write!(f, "{} {} ", c.flags(), c.tag)?;
                char_string(f, &c.value)
            }
            RData::SSHFP(s) => {
                write!(
                    f,
                    "{} {} ",
                    u8::from(s.algorithm),
                    u8::from(s.fingerprint_type)
                )?;
                hex(f, &s.fingerprint)
            }
            RData::TLSA(t) => {
                write!(
                    f,
                    "{} {} {} ",
                    u8::from(t.cert_usage),
                    u8::from(t.selector),
                    u8::from(t.matching)
                )?;
                hex(f, &t.cert_data)
            }
            RData::NULL(n) => unknown(f, &n.anything),
            RData::Unknown { rdata, .. } => unknown(f, &rdata.anything),
            other => write!(f, "{other}"),
        }
    }
}

/// One `<character-string>`: quoted, `"` and `\` escaped, other bytes outside printable
/// ASCII as `\DDD`.
fn char_string(f: &mut Formatter<'_>, s: &[u8]) -> fmt::Result {
    f.write_char('"')?;
    for &b in s {
        match b {
            b'"' | b'\\' => {
                f.write_char('\\')?;
                f.write_char(char::from(b))?;
            }
            0x20..=0x7e => f.write_char(char::from(b))?,
            _ => write!(f, "\\{b:03}")?,
        }
    }
    f.write_char('"')
}

fn hex(f: &mut Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02X}"))
}

/// RFC 3597's generic form: `\# length hex`.
fn unknown(f: &mut Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    write!(f, "\\# {}", bytes.len())?;
    if !bytes.is_empty() {
        f.write_char(' ')?;
        hex(f, bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{HINFO, NULL, TXT};

    fn text(d: RData) -> String {
        RDataText(&d).to_string()
    }

    #[test]
    fn character_strings_keep_their_boundaries_and_every_byte() {
        let t = TXT::from_bytes(vec![&b"a b"[..], &b""[..], &b"q\"\\\x00\xff"[..]]);
        assert_eq!(text(RData::TXT(t)), r#""a b" "" "q\"\\\000\255""#);
        assert_eq!(text(RData::TXT(TXT::from_bytes(vec![]))), r#""""#);
        let h = HINFO::new("x86 64".into(), "Linux".into());
        assert_eq!(text(RData::HINFO(h)), r#""x86 64" "Linux""#);
    }

    #[test]
    fn unknown_types_use_rfc_3597() {
        let d = RData::Unknown {
            code: RecordType::Unknown(65534),
            rdata: NULL::with(vec![0x0a, 0, 0, 1]),
        };
        assert_eq!(text(d), r"\# 4 0A000001");
        assert_eq!(
            TypeText(RecordType::Unknown(65534)).to_string(),
            "TYPE65534"
        );
    }
}
