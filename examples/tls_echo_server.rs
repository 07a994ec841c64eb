//! libevent's SSL echo server on evnet: a line-echo server over TLS on every address of a
//! host:port, optionally requiring client certificates from a CA and checking their issuer
//! (as the syslog relay does). SIGINT/SIGTERM end it.
//!
//! Try it with certificates made by `openssl req` (see the README) and
//! `cargo run --release --example tls_client -- --connect localhost:7040 --ca ca.pem`.
#[macro_use]
#[path = "util/out.rs"]
mod out;

use clap::Parser;
use evnet::bufio::{Conn, StreamEvent, StreamHandler};
use evnet::bytes::Bytes;
use evnet::ev::{Ctx, Loop};
use evnet::socket::{bind_tcp_all, Accept, Listener};
use evnet::tls::{ServerPem, Session, TlsAcceptor};

#[derive(Parser)]
#[command(about = "Line-echo server over TLS")]
struct Args {
    /// Certificate chain (PEM), leaf first.
    #[arg(long)]
    cert: String,
    /// Private key (PEM).
    #[arg(long)]
    key: String,
    /// CA certificates (PEM) that client certificates are verified against.
    #[arg(long)]
    ca: Option<String>,
    /// Refuse clients without a certificate (needs --ca).
    #[arg(long, requires = "ca")]
    require_client_cert: bool,
    /// Accept only client certificates whose issuer is this DN (RFC 4514, e.g. "CN=My CA");
    /// needs --ca.
    #[arg(long, requires = "ca")]
    issuer: Option<String>,
    /// Host and port to listen on (port 0: any).
    #[arg(long, default_value = "127.0.0.1:7040")]
    listen: String,
}

struct Echo {
    session: Session,
}

impl StreamHandler<()> for Echo {
    fn read(&mut self, c: &Conn<()>, line: Bytes, _: &mut (), cx: &mut Ctx<()>) {
        c.write_bytes(cx, line);
        c.write(cx, b"\n");
        c.read_line(cx);
    }
    fn event(&mut self, c: &Conn<()>, e: StreamEvent, _: &mut (), cx: &mut Ctx<()>) {
        match e {
            StreamEvent::Connected => {
                let peer = self.session.peer_names();
                eprintln!("connected: {:?}", peer.map(|p| p.subject));
            }
            StreamEvent::Eof => c.close(cx),
            e => {
                eprintln!("closing: {e:?}");
                c.abort(cx);
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let mut pem = ServerPem::new(&a.cert, &a.key);
    if let Some(ca) = &a.ca {
        pem = pem.client_ca(ca, a.require_client_cert);
    }
    if let Some(dn) = &a.issuer {
        pem = pem.issuer(dn); // checked in the handshake: a mismatch gets an alert
    }
    let acceptor = TlsAcceptor::new(pem.build()?);
    let (host, port) = a
        .listen
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--listen HOST:PORT"))?;
    let socks = bind_tcp_all(Some(host), port.parse()?)?;
    outln!("listening on {:?}", socks[0].local_addr()?.as_socket());
    let mut ev = Loop::<()>::new()?;
    let _l = Listener::new(&mut ev, socks, move |_, cx, acc| {
        let Accept::Conn(c) = acc else { return };
        let session = Session::default();
        let echo = Echo {
            session: session.clone(),
        };
        match acceptor.accept(cx, c.socket, &session, echo) {
            Ok(s) => {
                s.read_line(cx);
                s.detach();
            }
            Err(e) => eprintln!("accept: {}", out::Chain(&e)),
        }
    });
    for sig in [libc::SIGINT, libc::SIGTERM] {
        ev.signal(sig, |_, cx, _| cx.stop_loop())?;
    }
    ev.run(&mut ())?;
    Ok(())
}
