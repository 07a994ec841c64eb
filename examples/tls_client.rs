//! A TLS client like `openssl s_client -quiet`: lines from stdin go to the server, what the
//! server sends goes to stdout; at the end of stdin it sends close_notify and exits when the
//! server has closed too.
#[path = "util/out.rs"]
mod out;

use clap::Parser;
use crossbeam_channel::{unbounded, Receiver};
use evnet::bufio::{Conn, Options, Stream, StreamEvent, StreamHandler};
use evnet::bytes::Bytes;
use evnet::ev::{Ctx, Loop};
use evnet::pool::Pool;
use evnet::socket::{ConnectOptions, Target};
use evnet::tls::{ClientPem, Session, TlsConnector};
use std::io::{BufRead, Write};

#[derive(Parser)]
#[command(about = "TLS client: stdin lines to the server, server bytes to stdout")]
struct Args {
    /// Server to connect to, as HOST:PORT (HOST is also the name sent and checked in its
    /// certificate unless --servername is given).
    #[arg(long, default_value = "localhost:7040")]
    connect: String,
    /// CA certificates (PEM) the server's certificate is verified against.
    #[arg(long)]
    ca: String,
    /// Client certificate chain (PEM), for mutual TLS.
    #[arg(long, requires = "key")]
    cert: Option<String>,
    /// Client private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<String>,
    /// Name to send (SNI) and check in the server's certificate, if not HOST; it does not
    /// change where the client connects.
    #[arg(long)]
    servername: Option<String>,
}

struct App {
    stream: Option<Stream<App>>,
    lines: Receiver<Option<String>>,
    failed: bool,
    _pool: Pool<App>,
}

/// The plain stream's handler until the TLS layer takes the stream over.
struct Quiet;
impl StreamHandler<App> for Quiet {
    fn read(&mut self, _: &Conn<App>, _: Bytes, _: &mut App, _: &mut Ctx<App>) {}
    fn event(&mut self, _: &Conn<App>, _: StreamEvent, _: &mut App, _: &mut Ctx<App>) {}
}

struct Printer;
impl StreamHandler<App> for Printer {
    fn read(&mut self, c: &Conn<App>, data: Bytes, _: &mut App, cx: &mut Ctx<App>) {
        let mut o = std::io::stdout().lock();
        if let Err(e) = o.write_all(&data).and_then(|()| o.flush()) {
            out::failed(e);
        }
        c.read_chunk(cx);
    }
    fn event(&mut self, c: &Conn<App>, e: StreamEvent, app: &mut App, cx: &mut Ctx<App>) {
        let connected = matches!(e, StreamEvent::Connected);
        match e {
            StreamEvent::Connected => {}
            StreamEvent::Eof => c.close(cx),
            e => {
                eprintln!("tls_client: {e:?}");
                app.failed = true;
                c.abort(cx);
            }
        }
        if !connected {
            cx.stop_loop();
        }
    }
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let (host, port) = a
        .connect
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--connect HOST:PORT"))?;
    let mut pem = ClientPem::new(&a.ca);
    if let (Some(c), Some(k)) = (&a.cert, &a.key) {
        pem = pem.identity(c, k);
    }
    let mut ev = Loop::<App>::new()?;
    let pool = Pool::new(&mut ev)?;
    let (tx, lines) = unbounded();
    let (_w, waker) = ev.waker(|app: &mut App, cx, _| {
        while let Ok(line) = app.lines.try_recv() {
            match (&app.stream, line) {
                (Some(s), Some(l)) => s.write(cx, l.as_bytes()),
                (Some(s), None) => s.flush(cx, evnet::bufio::FlushMode::Finished), // close_notify
                _ => {}
            }
        }
    })?;
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let _ = tx.send(Some(line + "\n"));
            waker.wake();
        }
        let _ = tx.send(None);
        waker.wake();
    });
    // Connect to HOST, then speak TLS to it as NAME.
    let name = a.servername.as_deref().unwrap_or(host);
    let under = Stream::connect(
        &mut ev,
        &pool,
        Target::host(host, port.parse()?),
        ConnectOptions::default(),
        Options::default(),
        Quiet,
    );
    let session = Session::default();
    let stream = TlsConnector::new(pem.build()?).wrap(&mut ev, under, name, &session, Printer)?;
    stream.read_chunk(&mut ev);
    let mut app = App {
        stream: Some(stream),
        lines,
        failed: false,
        _pool: pool,
    };
    ev.run(&mut app)?;
    app.stream = None;
    if app.failed {
        std::process::exit(1);
    }
    Ok(())
}
