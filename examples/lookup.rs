//! A dig-like lookup on evnet's resolver.
//!
//! ```text
//! lookup [--server IP:PORT] [--json] TYPE NAME     e.g. lookup MX example.com
//! lookup --tls --server IP[:PORT] --servername NAME [--ca FILE] TYPE NAME
//!                                                  over TLS (RFC 7858), strict
//! lookup -x ADDRESS                                reverse (PTR)
//! lookup srv-hosts _sip._tcp.example.com           SRV in RFC 2782 order + addresses
//! lookup mx-hosts example.com                      MX by preference + addresses
//! ```
//!
//! Records print one per line in RFC 1035 presentation format (owner TTL class type data,
//! as `dig +noall +answer` does: the CNAME chain first, character-strings quoted and
//! escaped); compound results print each SRV/MX record followed by its target's
//! addresses. Errors print `status: NXDOMAIN` (etc.) on stderr and exit 1. A closed stdout
//! (`| head -1`) ends it quietly.
//!
//! With `--tls` the query goes over DNS over TLS to `--server` (port 853 unless given),
//! which must prove `--servername` with a certificate from `--ca` (by default the system's
//! CA bundle): the strict profile (RFC 8310), so a server that cannot be authenticated
//! gets no answer printed, `status: TLS` and the certificate error, and exit status 1.

#[macro_use]
#[path = "util/out.rs"]
mod out;

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use evnet::dns::{
    Answer, Error, RDataText, Record, RecordType, Resolver, ResolverOptions, ServiceHost,
    TlsServer, TypeText, ZoneLine,
};
use evnet::ev::Loop;

#[derive(Parser)]
#[command(about = "Look up DNS records with evnet's resolver")]
struct Args {
    /// Ask this server (IP or IP:PORT) instead of /etc/resolv.conf's.
    #[arg(long)]
    server: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Reverse lookup of this address.
    #[arg(short = 'x')]
    reverse: Option<IpAddr>,
    /// Ask `--server` over DNS over TLS (RFC 7858, strict: it must authenticate).
    #[arg(long, requires = "server")]
    tls: bool,
    /// With --tls: the name the server's certificate must carry (default: its address).
    #[arg(long, requires = "tls")]
    servername: Option<String>,
    /// With --tls: CA certificates (PEM) to authenticate the server with.
    #[arg(
        long,
        requires = "tls",
        default_value = "/etc/ssl/certs/ca-certificates.crt"
    )]
    ca: std::path::PathBuf,
    /// Seconds to wait for each server (at least 1).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// TYPE NAME, `srv-hosts NAME` or `mx-hosts NAME`.
    words: Vec<String>,
}

enum Out {
    Records(Answer),
    Targets(Vec<ServiceHost>),
}

fn record_json(r: &Record) -> String {
    format!(
        "{{\"name\":{},\"ttl\":{},\"class\":{},\"type\":{},\"data\":{}}}",
        out::json_str(&r.name.to_string()),
        r.ttl,
        out::json_str(&r.dns_class.to_string()),
        out::json_str(&TypeText(r.record_type()).to_string()),
        out::json_str(&RDataText(&r.data).to_string())
    )
}

fn address_line(host: &str, ip: &IpAddr) -> String {
    let t = if ip.is_ipv4() { "A" } else { "AAAA" };
    format!("{host} IN {t} {ip}")
}

fn print(out: &Out, json: bool) {
    match (out, json) {
        (Out::Records(a), false) => {
            // As dig prints an answer: the CNAME chain first, then the records.
            for r in a.cnames.iter().chain(&a.records) {
                outln!("{}", ZoneLine(r));
            }
        }
        (Out::Records(a), true) => {
            let recs: Vec<String> = a.records.iter().map(record_json).collect();
            let chain: Vec<String> = a.cnames.iter().map(record_json).collect();
            outln!(
                "{{\"status\":\"NOERROR\",\"cnames\":[{}],\"answers\":[{}]}}",
                chain.join(","),
                recs.join(",")
            );
        }
        (Out::Targets(ts), false) => {
            for t in ts {
                outln!("{}", ZoneLine(&t.record));
                let host = t.host.to_string();
                for ip in &t.addresses {
                    outln!("  {}", address_line(&host, ip));
                }
                if let Some(e) = &t.error {
                    outln!("  ; {host}: {}", out::Chain(e));
                }
            }
        }
        (Out::Targets(ts), true) => {
            let items: Vec<String> = ts
                .iter()
                .map(|t| {
                    let ips: Vec<String> = t
                        .addresses
                        .iter()
                        .map(|i| out::json_str(&i.to_string()))
                        .collect();
                    format!(
                        "{{\"record\":{},\"host\":{},\"port\":{},\"addresses\":[{}]}}",
                        record_json(&t.record),
                        out::json_str(&t.host.to_string()),
                        t.port,
                        ips.join(",")
                    )
                })
                .collect();
            outln!(
                "{{\"status\":\"NOERROR\",\"targets\":[{}]}}",
                items.join(",")
            );
        }
    }
}

type Result2 = Option<Result<Out, Error>>;

/// A type's mnemonic (`MX`, any case) or RFC 3597's `TYPEnnn`.
fn record_type(s: &str) -> anyhow::Result<RecordType> {
    let up = s.to_ascii_uppercase();
    if let Some(n) = up.strip_prefix("TYPE").and_then(|n| n.parse::<u16>().ok()) {
        return Ok(RecordType::from(n));
    }
    RecordType::from_str(&up).map_err(|_| anyhow::anyhow!("unknown record type {s}"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = ResolverOptions::system();
    if let Some(s) = &args.server {
        let port = if args.tls { 853 } else { 53 };
        let addr = SocketAddr::from_str(s)
            .or_else(|_| IpAddr::from_str(s).map(|ip| SocketAddr::new(ip, port)))
            .map_err(|_| anyhow::anyhow!("--server {s}: an IP or IP:PORT"))?;
        if args.tls {
            let name = args.servername.clone().unwrap_or(addr.ip().to_string());
            config.tls_servers = vec![TlsServer::new(addr.ip(), &name)
                .port(addr.port())
                .ca(&args.ca)];
            config.servers.clear();
        } else {
            config.servers = vec![addr];
        }
    }
    config.timeout = Duration::from_secs(args.timeout);
    let mut ev = Loop::<Result2>::new()?;
    let dns = Resolver::new(&ev, config);
    let records = |st: &mut Result2, cx: &mut evnet::ev::Ctx<Result2>, r: Result<Answer, Error>| {
        *st = Some(r.map(Out::Records));
        cx.stop_loop();
    };
    let targets =
        |st: &mut Result2, cx: &mut evnet::ev::Ctx<Result2>, r: Result<Vec<ServiceHost>, Error>| {
            *st = Some(r.map(Out::Targets));
            cx.stop_loop();
        };
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    // Each branch keeps its handle alive while the loop runs.
    let _handle: Box<dyn std::any::Any> = match (args.reverse, words.as_slice()) {
        (Some(ip), []) => Box::new(dns.reverse(&mut ev, ip, records)),
        (None, ["srv-hosts", name]) => Box::new(dns.srv_hosts(&mut ev, name, targets)),
        (None, ["mx-hosts", name]) => Box::new(dns.mx_hosts(&mut ev, name, targets)),
        (None, [rtype, name]) => {
            let t = record_type(rtype)?;
            Box::new(dns.query(&mut ev, name, t, records))
        }
        _ => anyhow::bail!("usage: lookup [--server IP:PORT] [--tls --servername NAME --ca FILE] [--json] TYPE NAME | -x ADDRESS | srv-hosts NAME | mx-hosts NAME"),
    };
    let mut result: Result2 = None;
    ev.run(&mut result)?;
    match result {
        Some(Ok(out)) => {
            print(&out, args.json);
            Ok(())
        }
        Some(Err(e)) => {
            if args.json {
                outln!(
                    "{{\"status\":{},\"error\":{}}}",
                    out::json_str(e.status()),
                    out::json_str(&out::Chain(&e).to_string())
                );
            }
            eprintln!("status: {}", e.status());
            eprintln!("{}", out::Chain(&e));
            std::process::exit(1);
        }
        None => anyhow::bail!("no answer"),
    }
}
