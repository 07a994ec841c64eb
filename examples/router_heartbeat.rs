//! A ROUTER server that answers every request with "ok: <request>", and a PUB socket that
//! publishes a heartbeat every `--every-ms` from a timer (Outbox in the loop state).
//! SIGINT/SIGTERM end it cleanly.
#[macro_use]
#[path = "util/out.rs"]
mod out;

use std::time::Duration;

use clap::Parser;
use evnet::ev::{Ctx, Loop};
use evnet::fair::{Outbox, Sock, ZmqHandler, ZmqWatcher};
use evnet::zmq;

#[derive(Parser)]
#[command(about = "ROUTER server with a PUB heartbeat")]
struct Args {
    /// Endpoint the ROUTER binds.
    #[arg(long, default_value = "tcp://127.0.0.1:5555")]
    router: String,
    /// Endpoint the PUB binds.
    #[arg(long, default_value = "tcp://127.0.0.1:5556")]
    publish: String,
    /// Heartbeat period in milliseconds.
    #[arg(long, default_value_t = 1000)]
    every_ms: u64,
}

#[derive(Default)]
struct App {
    beats: Outbox,
    publisher: Option<ZmqWatcher>,
    n: u64,
}

struct Server;
impl ZmqHandler<Ctx<App>> for Server {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        s: &mut Sock<'_>,
        (_, _): (&mut App, &mut Ctx<App>),
    ) {
        let reply = [&m[0][..], &[b"ok: ", &m[m.len() - 1][..]].concat()];
        let _ = s.send_multipart(&reply); // ROUTER drops replies to peers that left
    }
}

struct Heartbeat;
impl ZmqHandler<Ctx<App>> for Heartbeat {
    fn writable(&mut self, s: &mut Sock<'_>, (app, _): (&mut App, &mut Ctx<App>)) {
        let _ = app.beats.flush_one(s);
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ctx = zmq::Context::new();
    let (router, publ) = (ctx.socket(zmq::ROUTER)?, ctx.socket(zmq::PUB)?);
    router.bind(&args.router)?;
    publ.bind(&args.publish)?;
    outln!(
        "router {} publish {}",
        router.get_last_endpoint()?.unwrap_or_default(),
        publ.get_last_endpoint()?.unwrap_or_default()
    );
    let mut ev = Loop::<App>::new()?;
    let _server = ZmqWatcher::new(&mut ev, router, Server)?;
    let mut app = App {
        publisher: Some(ZmqWatcher::new(&mut ev, publ, Heartbeat)?),
        ..App::default()
    };
    let every = Duration::from_millis(args.every_ms.max(1));
    ev.timer(every, Some(every), |app: &mut App, _, _| {
        app.n += 1;
        app.beats.push([format!("heartbeat {}", app.n).as_bytes()]);
        if let Some(p) = &app.publisher {
            p.set_writable(true);
        }
    });
    for sig in [libc::SIGINT, libc::SIGTERM] {
        ev.signal(sig, |_, cx, _| cx.stop_loop())?;
    }
    ev.run(&mut app)?;
    outln!("stopped after {} heartbeats", app.n);
    Ok(())
}
