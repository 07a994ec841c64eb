//! Test certificates made at test time with rcgen and written to a fresh temp dir: a CA,
//! and leaf certificates it signs (server or client, valid or expired).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A directory of its own for one test's files.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "evnet-tls-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A certificate authority; `pem` is its certificate file.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub pem: PathBuf,
}

/// A leaf certificate and its key, as files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
}

impl Ca {
    /// A self-signed CA with distinguished name `O=<org>, CN=<cn>`.
    pub fn new(dir: &Path, org: &str, cn: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.join(format!("{cn}.ca.pem").replace(' ', "_"));
        std::fs::write(&pem, cert.pem()).unwrap();
        Ca { params, key, pem }
    }

    /// A leaf for `dns` names with `CN=<cn>`, signed by this CA; `expired` puts its
    /// validity in the past.
    pub fn leaf(&self, dir: &Path, cn: &str, dns: &[&str], expired: bool) -> Leaf {
        let names: Vec<String> = dns.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let base = dir.join(cn.replace(' ', "_"));
        let (c, k) = (base.with_extension("pem"), base.with_extension("key"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        Leaf {
            cert: c,
            key: k,
            der: cert.der().to_vec(),
        }
    }
}
