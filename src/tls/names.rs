//! Certificate names as strings: subject and issuer in RFC 4514 form, as the relay compares
//! them with a configured issuer.

use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use std::sync::Arc;

use super::Error;

/// A certificate's subject and issuer, and its DER bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertNames {
    /// The subject, e.g. `CN=client 1,O=Example`.
    pub subject: String,
    /// The issuer, e.g. `CN=Example CA,O=Example`.
    pub issuer: String,
}

impl CertNames {
    /// Reads the subject and issuer of a DER certificate.
    ///
    /// # Errors
    /// [`Error::Certificate`] when the bytes are not an X.509 certificate.
    ///
    /// The example makes its certificate with `rcgen`, which it needs in your `Cargo.toml`:
    ///
    /// ```
    /// let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()])?;
    /// let names = evnet::tls::CertNames::from_der(ca.cert.der())?;
    /// assert_eq!(names.subject, "CN=rcgen self signed cert");
    /// assert_eq!(names.issuer, names.subject);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_der(der: &[u8]) -> Result<CertNames, Error> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| Error::Certificate(Arc::new(e)))?;
        Ok(CertNames {
            subject: rfc4514(cert.subject()),
            issuer: rfc4514(cert.issuer()),
        })
    }
}

/// A distinguished name as RFC 4514 writes it: the last RDN first, RDNs joined by `,`,
/// multi-valued RDNs by `+`, well-known attribute types by their short names and the
/// others as dotted OIDs, special characters escaped.
pub(crate) fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    let ty = short_name(&oid).map_or(oid.clone(), str::to_owned);
                    let value = match atv.as_str() {
                        Ok(v) => escape(v),
                        // Not a string type: RFC 4514's `#` + hex of the BER value.
                        Err(_) => format!("#{}", hex(atv.attr_value().data)),
                    };
                    format!("{ty}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// RFC 4514 §2.4: escape `"+,;<>\`, a leading space or `#`, a trailing space, and NUL.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' | '#' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn special_characters_are_escaped_as_rfc_4514_says() {
        assert_eq!(escape("Acme, Inc."), "Acme\\, Inc.");
        assert_eq!(escape(" lead"), "\\ lead");
        assert_eq!(escape("#hash"), "\\#hash");
        assert_eq!(escape("trail "), "trail\\ ");
        assert_eq!(escape("a+b;c<d>e\"f\\g"), "a\\+b\\;c\\<d\\>e\\\"f\\\\g");
        assert_eq!(escape(""), "");
    }
}
